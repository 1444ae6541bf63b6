//! Instructions per request, counted by valgrind's callgrind: repeatable on a noisy shared
//! machine, where timings are not. For each route, the benchmark runs itself under callgrind
//! twice on each side (the function in-process, or the floor), with a few and with many
//! requests after the same set-up and warm-up; the difference divided by the difference in
//! requests is what one request costs in this process (the database server's work is another
//! process, not counted, and the same for both sides).

use std::process::Command;

use crate::warm::{Setup, handle};

/// Requests of the two runs per side.
const FEW: usize = 50;
const MANY: usize = 250;
const WARMUP: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Side {
    App,
    Floor,
}

/// In the child: set up, warm up, then `n` requests of route `route` on `side`.
pub(crate) async fn child(route: usize, side: Side, n: usize) {
    let s = Setup::new().await;
    let (_, event, status) = s.routes()[route].clone();
    for i in 0..WARMUP + n {
        match side {
            Side::App => assert_eq!(handle(&s.f, &Setup::event(&event, i)).await, status),
            Side::Floor => assert!(s.floor_route(route).await >= 1),
        }
    }
}

/// Instructions per request of `route` on `side`, or why they could not be counted.
fn per_request(route: usize, side: Side) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let server = testkit::pg::server();
    let mut collected = Vec::new();
    for n in [FEW, MANY] {
        let out = Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(&exe)
            .args(["--bootstrap", "/nonexistent", "--count-route", &route.to_string()])
            .args(["--count-side", if side == Side::App { "app" } else { "floor" }, "--count-requests", &n.to_string()])
            // One server for every run: the children do not start their own.
            .env("TEST_DATABASE_URL", server.url("postgres"))
            .output()
            .map_err(|e| format!("valgrind: {e} (Debian: apt-get install valgrind)"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!("the counted run failed: {stderr}"));
        }
        let ir = stderr
            .lines()
            .find_map(|l| l.split("Collected :").nth(1))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("no instruction count in callgrind's output: {stderr}"))?;
        collected.push(ir);
    }
    Ok((collected[1] as f64 - collected[0] as f64) / (MANY - FEW) as f64)
}

/// Instructions per request for every route, ours and the floor's.
pub(crate) fn instructions(routes: &[&'static str]) -> Vec<(&'static str, f64, f64)> {
    routes
        .iter()
        .enumerate()
        .filter_map(|(i, name)| match (per_request(i, Side::App), per_request(i, Side::Floor)) {
            (Ok(app), Ok(floor)) => Some((*name, app, floor)),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("instructions of {name}: {e}");
                None
            }
        })
        .collect()
}
