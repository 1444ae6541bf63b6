//! Cold start and memory of the release `bootstrap` as a process, through the Runtime API and
//! IAM-auth stand-ins.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use db_auth::SystemClock;
use runtime_standin::{Outcome, RuntimeApi};
use serde_json::json;
use testkit::iam;
use uuid::Uuid;

use crate::{
    Cold,
    warm::{QUIET, claims_event},
};

fn spawn(binary: &Path, runner: Option<&str>, env: &[(String, String)]) -> Child {
    let mut cmd = match runner {
        Some(r) => {
            let mut c = Command::new(r);
            c.arg(binary);
            c
        }
        None => Command::new(binary),
    };
    cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v))).stdout(Stdio::null()).stderr(Stdio::null());
    cmd.spawn().expect("spawn bootstrap")
}

async fn first_response(runtime: &RuntimeApi, event: String) -> u16 {
    match runtime.call(serde_json::from_str(&event).unwrap(), Duration::from_secs(60)).await {
        Some(Outcome::Response(r)) => r["statusCode"].as_u64().unwrap_or(0) as u16,
        other => panic!("no response from bootstrap: {other:?}"),
    }
}

pub(crate) async fn cold(label: &str, binary: &Path, runner: Option<&str>, spawns: usize) -> Cold {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let ca = iam::ca_file(&standin);
    let (mut ready, mut first) = (Vec::new(), Vec::new());
    for _ in 0..spawns {
        let runtime = RuntimeApi::start().await;
        let env = iam::function_env(&runtime.endpoint(), &db, &standin, &ca, QUIET);
        runtime.invoke(serde_json::from_str(&claims_event("GET", "/api/me", None)).unwrap());
        let started = Instant::now();
        let mut child = spawn(binary, runner, &env);
        while runtime.polls() < 2 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        // The first poll got the queued event; the second means it was answered.
        let answered = started.elapsed();
        ready.push(runtime.first_poll().unwrap() - started);
        first.push(answered);
        let _ = child.kill();
        let _ = child.wait();
    }
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    ready.sort();
    first.sort();
    Cold {
        binary: label.to_string(),
        spawns,
        ready_median_ms: ms(&ready[spawns / 2]),
        ready_max_ms: ms(ready.last().unwrap()),
        first_response_median_ms: ms(&first[spawns / 2]),
        first_response_max_ms: ms(first.last().unwrap()),
    }
}

pub(crate) async fn peak_rss(binary: &Path) -> u64 {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let ca = iam::ca_file(&standin);
    let runtime = RuntimeApi::start().await;
    let mut child = spawn(binary, None, &iam::function_env(&runtime.endpoint(), &db, &standin, &ca, QUIET));
    let tenant = Uuid::new_v4();
    assert_eq!(
        first_response(&runtime, claims_event("POST", "/api/tenants", Some(&json!({ "name": "rss", "id": tenant }))))
            .await,
        201
    );
    let todos = format!("/api/tenants/{tenant}/todos");
    for i in 0..1000 {
        let event = match i % 4 {
            0 => claims_event("POST", &todos, Some(&json!({ "title": format!("todo {i}") }))),
            1 => claims_event("GET", &format!("{todos}?limit=50"), None),
            2 => claims_event("GET", "/api/me", None),
            _ => claims_event("GET", "/api/todos?limit=200", None),
        };
        let status = first_response(&runtime, event).await;
        assert!(status == 200 || status == 201, "request {i}: {status}");
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    hwm
}

/// The p50 in ms of a warm request and of a request that must reconnect first (what follows
/// the server closing an idle session: TLS, a token from the cache, login, prepares), through
/// the IAM stand-in, in-process.
pub(crate) async fn reconnect(rounds: usize) -> (f64, f64) {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let cfg = iam::config(&db, &standin);
    let cache = iam::token_cache(Arc::new(SystemClock));
    let store = store::Store::new(cfg.clone(), iam::tokens(&cfg, cache)).unwrap();
    let f = lambda::Function::new(
        api::App::new(store),
        lambda::Identity::with_sources(vec![lambda::Source::ApiGatewayJwt], None),
    );
    let me = claims_event("GET", "/api/me", None);
    assert_eq!(crate::warm::handle(&f, &me).await, 200);
    let (mut warm, mut cold) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        assert_eq!(crate::warm::handle(&f, &me).await, 200);
        warm.push(t.elapsed());
        standin.drop_sessions();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t = Instant::now();
        assert_eq!(crate::warm::handle(&f, &me).await, 200);
        cold.push(t.elapsed());
    }
    warm.sort();
    cold.sort();
    let ms = |v: &[Duration]| v[v.len() / 2].as_secs_f64() * 1000.0;
    (ms(&warm), ms(&cold))
}
