//! The noisy neighbour (issue 24): four quiet tenants within their rate and one noisy tenant at
//! ten times its own, each through three functions of its own (each its own store and
//! connection, serving one request at a time, as Lambda instances are), all on one database. The quiet tenants' p50 and p99 with the noisy one beside
//! them, against the same run without it; their errors; the noisy tenant's admitted requests
//! against the stated bound (crates/limits).

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use lambda::Function;
use store::{Engine, TenantId};

use crate::warm::{claims_event, handle, percentile, seed};

/// Functions serving the tenants (Lambda instances).
const FUNCTIONS: usize = 3;
/// How long each run offers its load.
const WINDOW: Duration = Duration::from_secs(4);
/// Each quiet tenant: 20 requests a second in all (its plan allows 100).
const QUIET_EVERY: Duration = Duration::from_millis(50);
/// The noisy tenant: 200 requests a second in all, ten times its plan's 20.
const NOISY_EVERY: Duration = Duration::from_millis(5);
/// Runs of each kind, alternated (alone, beside, alone, ...), so that drift falls on both.
const ROUNDS: usize = 2;
/// The noisy plan's rate and burst, and a lease's size (burst / 8) with the credit (2).
const NOISY_RATE: f64 = 20.0;
const NOISY_BURST: usize = 160;
const NOISY_LEASE_AND_CREDIT: usize = 160 / 8 + 2;

/// The catalogue of this run: quiet tenants on the default plan, the noisy one on `noisy`.
const PLANS: &str = r#"{"default": "quiet", "plans": {
    "quiet": {"rate": 100, "burst": 800, "todos": 1000000, "members": 100, "pending_invitations": 100, "tenants_per_user": 100},
    "noisy": {"rate": 20, "burst": 160, "todos": 1000000, "members": 100, "pending_invitations": 100, "tenants_per_user": 100}}}"#;

#[derive(serde::Serialize, Default)]
pub(crate) struct Noisy {
    pub quiet_requests: usize,
    pub quiet_p50_us_alone: f64,
    pub quiet_p99_us_alone: f64,
    pub quiet_p50_us_beside: f64,
    pub quiet_p99_us_beside: f64,
    /// The quiet tenants' non-2xx answers (both runs; budget: 0).
    pub quiet_errors: usize,
    pub noisy_offered: usize,
    pub noisy_admitted: usize,
    /// floor(W / T) + B + K (max_lease + credit) for the run's window.
    pub noisy_bound: usize,
}

/// One tenant's load through one function: a request every `every` for the window; the time
/// and status of each.
async fn drive(f: &Function, path: &str, every: Duration, start: Instant) -> Vec<(Duration, u16)> {
    let event = claims_event("GET", path, None);
    let mut out = Vec::new();
    let mut next = start;
    while start.elapsed() < WINDOW {
        tokio::time::sleep_until(next.into()).await;
        next += every;
        let t = Instant::now();
        let status = handle(f, &event).await;
        out.push((t.elapsed(), status));
    }
    out
}

/// One run: every quiet tenant through its functions, and the noisy one too when `noisy`.
async fn run(
    functions: &[Vec<Function>],
    quiet: &[String],
    noisy: Option<(&[Function], &str)>,
) -> (Vec<Vec<(Duration, u16)>>, Vec<u16>) {
    let start = Instant::now();
    let quiet_runs = join_all(
        quiet
            .iter()
            .zip(functions)
            .flat_map(|(path, fs)| fs.iter().map(move |f| drive(f, path, QUIET_EVERY * FUNCTIONS as u32, start))),
    );
    let noisy_runs = join_all(
        noisy
            .into_iter()
            .flat_map(|(fs, path)| fs.iter().map(move |f| drive(f, path, NOISY_EVERY * FUNCTIONS as u32, start))),
    );
    let (q, n) = futures_util::future::join(quiet_runs, noisy_runs).await;
    (q, n.into_iter().flatten().map(|(_, s)| s).collect())
}

pub(crate) async fn noisy() -> Noisy {
    let db = testkit::pg::db().await;
    let plans = limits::Plans::from_json(PLANS).expect("the run's plans");
    let instances = || -> Vec<Function> {
        (0..FUNCTIONS).map(|_| crate::warm::function_with(db.runtime_store(), &plans)).collect()
    };
    let functions: Vec<Vec<Function>> = (0..4).map(|_| instances()).collect();
    let noisy_functions = instances();
    let mut quiet = Vec::new();
    for fs in &functions {
        quiet.push(seed(&fs[0]).await.1);
    }
    let (noisy_tenant, noisy_path, _) = seed(&noisy_functions[0]).await;
    let mut admin = db.admin().await;
    store::quota::set_plan(&mut admin, Engine::Postgres, TenantId(noisy_tenant), "noisy").await.expect("set the plan");
    // Warm-up: every function's connection, and its knowledge that the caller is a member.
    for (fs, path) in functions.iter().zip(&quiet).chain([(&noisy_functions, &noisy_path)]) {
        for f in fs {
            for _ in 0..3 {
                handle(f, &claims_event("GET", path, None)).await;
            }
        }
    }
    let (mut alone, mut beside, mut noisy, mut window) = (Vec::new(), Vec::new(), Vec::new(), Duration::ZERO);
    for _ in 0..ROUNDS {
        alone.extend(run(&functions, &quiet, None).await.0);
        // The noisy tenant's budget is full again before it starts.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = Instant::now();
        let (q, n) = run(&functions, &quiet, Some((&noisy_functions, &noisy_path))).await;
        window += started.elapsed();
        beside.extend(q);
        noisy.extend(n);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let stats = |runs: &[Vec<(Duration, u16)>]| {
        let mut times: Vec<Duration> = runs.iter().flatten().map(|(t, _)| *t).collect();
        times.sort();
        let errors = runs.iter().flatten().filter(|(_, s)| !(200..300).contains(s)).count();
        (percentile(&times, 0.5), percentile(&times, 0.99), errors, times.len())
    };
    let (p50_alone, p99_alone, errors_alone, n) = stats(&alone);
    let (p50_beside, p99_beside, errors_beside, _) = stats(&beside);
    // Each round's window is a window of its own: the bound summed over the rounds.
    let bound = (window.as_secs_f64() * NOISY_RATE).floor() as usize
        + ROUNDS * (NOISY_BURST + FUNCTIONS * NOISY_LEASE_AND_CREDIT);
    Noisy {
        quiet_requests: n,
        quiet_p50_us_alone: p50_alone,
        quiet_p99_us_alone: p99_alone,
        quiet_p50_us_beside: p50_beside,
        quiet_p99_us_beside: p99_beside,
        quiet_errors: errors_alone + errors_beside,
        noisy_offered: noisy.len(),
        noisy_admitted: noisy.iter().filter(|s| (200..300).contains(*s)).count(),
        noisy_bound: bound,
    }
}

pub(crate) fn print_table(n: &Noisy) {
    println!("\n| noisy neighbour (3 functions per tenant, one database) | p50 µs | p99 µs |");
    println!("|---|---:|---:|");
    println!("| 4 quiet tenants at 20/s each, alone | {:.0} | {:.0} |", n.quiet_p50_us_alone, n.quiet_p99_us_alone);
    println!(
        "| the same beside a tenant at 10x its 20/s | {:.0} ({:.2}x) | {:.0} ({:.2}x) |",
        n.quiet_p50_us_beside,
        n.quiet_p50_us_beside / n.quiet_p50_us_alone,
        n.quiet_p99_us_beside,
        n.quiet_p99_us_beside / n.quiet_p99_us_alone
    );
    println!(
        "quiet requests per kind of run {}, their errors {}; the noisy tenant: {} offered, {} admitted, bound {}",
        n.quiet_requests, n.quiet_errors, n.noisy_offered, n.noisy_admitted, n.noisy_bound
    );
}
