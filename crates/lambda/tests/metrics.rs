//! The per-request metrics: the real `bootstrap` process serves a run of requests, and the
//! Embedded Metric Format records in what it printed (what Lambda sends to CloudWatch Logs) are
//! checked against the requests: one record each, with route, status class, latency and the
//! database round trips, and the tenant as a property (a dimension only when configured).

mod common;

use std::{
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use common::{event, status_and_body};
use db_auth::SystemClock;
use runtime_standin::{Outcome, RuntimeApi};
use serde_json::{Value, json};
use testkit::iam;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_emits_one_emf_record_that_matches_it() {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let ca = iam::ca_file(&standin);
    let runtime = RuntimeApi::start().await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let env = iam::function_env(
        &runtime.endpoint(),
        &db,
        &standin,
        &ca,
        &[("IDENTITY_SOURCES", "apigw_jwt"), ("METRICS_NAMESPACE", "TestNs"), ("METRICS_TENANT_DIMENSION", "true")],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .env_clear()
        .envs(env)
        .stdout(Stdio::from(log.reopen().unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let mut made = Vec::new();
    let mut send = async |e: Value| {
        let path = e["rawPath"].as_str().unwrap().to_string();
        let method = e["requestContext"]["http"]["method"].as_str().unwrap().to_string();
        let Some(Outcome::Response(res)) = runtime.call(e, WAIT).await else { panic!("no answer") };
        let (status, body) = status_and_body(&res);
        made.push((method, path, status));
        body
    };
    let tenant = send(event("apigw-v2-jwt.json", "POST", "/api/tenants", Some(json!({ "name": "Acme" })))).await;
    let tenant = tenant["id"].as_str().unwrap().to_string();
    let todos = format!("/api/tenants/{tenant}/todos");
    send(event("apigw-v2-jwt.json", "POST", &todos, Some(json!({ "title": "measured" })))).await;
    send(event("apigw-v2-jwt.json", "GET", &todos, None)).await;
    send(event("apigw-v2-jwt.json", "GET", &format!("/api/tenants/{}/todos", uuid::Uuid::new_v4()), None)).await;
    send(event("apigw-v2-no-auth.json", "GET", "/api/me", None)).await;
    send(event("apigw-v2-jwt.json", "GET", "/health", None)).await;
    let _ = child.kill();
    let _ = child.wait();

    let text = std::fs::read_to_string(log.path()).unwrap();
    let records: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(records.len(), made.len(), "one record per request:\n{text}");
    let routes = [
        "POST /api/tenants",
        "POST /api/tenants/{tenant_id}/todos",
        "GET /api/tenants/{tenant_id}/todos",
        "GET /api/tenants/{tenant_id}/todos",
        "GET /api/me",
        "GET /health",
    ];
    for ((record, (_, path, status)), route) in records.iter().zip(&made).zip(routes) {
        let spec = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], "TestNs");
        assert_eq!(record["Route"], route, "{record}");
        assert_eq!(record["status"].as_u64(), Some(u64::from(*status)), "{record}");
        assert_eq!(record["StatusClass"], format!("{}xx", status / 100));
        assert_eq!(record["Requests"], 1);
        assert_eq!(record["Errors5xx"], 0);
        assert!(record["Latency"].as_f64().is_some_and(|l| l > 0.0), "{record}");
        assert_eq!(record["Service"], "tenant-api");
        assert_eq!(record["tenant_id"].as_str(), api::routes::tenant_in_path(path));
        let dims = spec["Dimensions"].as_array().unwrap();
        let tenant_dim = dims.contains(&json!(["Service", "TenantId"]));
        assert_eq!(tenant_dim, *status < 400 && record["tenant_id"].is_string(), "{record}");
    }
    // The database work: every API request that reached the database took one round trip after
    // the first (which also logged in and registered the caller); /health and the 401 none.
    let trips: Vec<u64> = records.iter().map(|r| r["DbRoundTrips"].as_u64().unwrap()).collect();
    assert!(trips[0] >= 2, "the first request connects and registers: {trips:?}");
    assert_eq!(&trips[1..], &[1, 1, 1, 0, 0], "{trips:?}");
    assert!(records.iter().all(|r| r["DbConnectFailures"] == 0 && r["Retries"] == 0));
}
