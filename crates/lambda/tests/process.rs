//! The real `bootstrap` process against the Runtime API stand-in, as Lambda runs it, logging in
//! to a throwaway PostgreSQL through the IAM-auth stand-in (token + verified TLS). scripts/test.sh
//! runs these tests a second time against the packaged arm64 binary under qemu.

mod common;

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use common::{event, status_and_body};
use db_auth::SystemClock;
use runtime_standin::{Outcome, RuntimeApi};
use serde_json::{Value, json};
use testkit::{iam, pg::TestDb};

const WAIT: Duration = Duration::from_secs(30);

/// The environment Lambda gives the function, plus our configuration for `db`.
fn lambda_env(
    runtime: &RuntimeApi,
    db: &TestDb,
    standin: &iam_standin::Standin,
    ca: &iam::CaFile,
) -> Vec<(String, String)> {
    iam::function_env(
        &runtime.endpoint(),
        db,
        standin,
        ca,
        &[("IDENTITY_SOURCES", "apigw_jwt,lambda_authorizer"), ("LOG_LEVEL", "info")],
    )
}

/// The binary under test: this build's `bootstrap`, or the one `BOOTSTRAP_UNDER_TEST` names
/// (scripts/test.sh sets it to the packaged arm64 binary, run through
/// `BOOTSTRAP_RUNNER=qemu-aarch64-static`).
fn bootstrap_command() -> Command {
    let binary = std::env::var("BOOTSTRAP_UNDER_TEST").unwrap_or_else(|_| env!("CARGO_BIN_EXE_bootstrap").to_string());
    match std::env::var("BOOTSTRAP_RUNNER") {
        Ok(runner) if !runner.is_empty() => {
            let mut cmd = Command::new(runner);
            cmd.arg(binary);
            cmd
        }
        _ => Command::new(binary),
    }
}

fn spawn(env: &[(String, String)]) -> Child {
    bootstrap_command()
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bootstrap")
}

struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn answer(runtime: &RuntimeApi, e: Value) -> (u16, Value) {
    match runtime.call(e, WAIT).await {
        Some(Outcome::Response(res)) => status_and_body(&res),
        other => panic!("expected a response, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_process_serves_api_gateway_events_with_one_connection() {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let ca = iam::ca_file(&standin);
    let runtime = RuntimeApi::start().await;
    let _process = Running { child: spawn(&lambda_env(&runtime, &db, &standin, &ca)) };

    let (status, body) =
        answer(&runtime, event("apigw-v2-jwt.json", "POST", "/api/tenants", Some(json!({ "name": "Acme" })))).await;
    assert_eq!(status, 201, "{body}");
    let tenant = body["id"].as_str().unwrap().to_string();
    let todos = format!("/api/tenants/{tenant}/todos");
    let (status, body) =
        answer(&runtime, event("apigw-v2-jwt.json", "POST", &todos, Some(json!({ "title": "ship it" })))).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = answer(&runtime, event("apigw-v2-jwt.json", "GET", &todos, None)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["title"], "ship it");
    let (status, _) = answer(&runtime, event("apigw-v2-lambda-authorizer.json", "GET", &todos, None)).await;
    assert_eq!(status, 404, "another user is not a member");
    let (status, body) = answer(&runtime, event("apigw-v2-no-auth.json", "GET", &todos, None)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    let mut malformed = event("apigw-v2-jwt.json", "POST", &todos, Some(json!({})));
    malformed["body"] = json!("{\"title\": ");
    let (status, body) = answer(&runtime, malformed).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")));

    // Many invocations in a row: still the one connection, and the token signed once.
    for i in 0..40 {
        let (status, _) =
            answer(&runtime, event("apigw-v2-jwt.json", "GET", &format!("{todos}?limit={}", 1 + i % 5), None)).await;
        assert_eq!(status, 200);
    }
    assert_eq!(standin.accepted_logins(), 1, "one database connection for every invocation");
    assert_eq!(standin.active_sessions(), 1);
    // 46 events; after the last answer the process polls again (it may take a moment).
    let deadline = std::time::Instant::now() + WAIT;
    while runtime.polls() < 47 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(runtime.polls(), 47, "every answer was followed by the next poll");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_malformed_variable_is_an_init_error_that_names_it() {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let ca = iam::ca_file(&standin);
    for (var, value) in [
        ("DB_HOST", None),
        ("DB_PORT", Some("fifty")),
        ("IDENTITY_SOURCES", Some("everyone")),
        ("LOG_LEVEL", Some("loud==")),
    ] {
        let runtime = RuntimeApi::start().await;
        let mut env = lambda_env(&runtime, &db, &standin, &ca);
        env.retain(|(k, _)| k != var);
        if let Some(v) = value {
            env.push((var.to_string(), v.to_string()));
        }
        let mut child = spawn(&env);
        let init_error = runtime.init_error(WAIT).await.unwrap_or_else(|| panic!("{var}: no init error reported"));
        let message = init_error["errorMessage"].as_str().unwrap_or_default();
        assert!(message.contains(var), "{var}: {init_error}");
        assert_eq!(init_error["errorType"], "Runtime.ConfigError");
        let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
        assert!(!status.success(), "{var}: the process exits after a failed init");
        assert_eq!(runtime.polls(), 0, "{var}: no event is polled after a failed init");
    }
    assert_eq!(standin.connections(), 0, "init never touched the database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_does_not_wait_for_a_slow_database() {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    standin.set_delay(Duration::from_secs(3));
    let ca = iam::ca_file(&standin);
    let runtime = RuntimeApi::start().await;
    let started = std::time::Instant::now();
    let _process = Running { child: spawn(&lambda_env(&runtime, &db, &standin, &ca)) };
    while runtime.first_poll().is_none() {
        assert!(started.elapsed() < Duration::from_secs(2), "init waited for the database");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The first request waits for the connection (3 s), within the 30 s connect timeout.
    let (status, body) = answer(&runtime, event("apigw-v2-jwt.json", "GET", "/api/me", None)).await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() >= Duration::from_secs(3));
}
