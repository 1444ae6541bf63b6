//! Scenario 6: PostgreSQL restarts (a real fast shutdown and start of the test server); the
//! function recovers on the next request. Its own test binary: every test of a process shares
//! the server, and a restart ends all their connections.

mod common;

use std::sync::Arc;

use common::event;
use db_auth::SystemClock;
use lambda::{Function, Identity, Source};
use lambda_http::Body;
use serde_json::{Value, json};
use store::Store;
use testkit::iam;

async fn call(f: &Function, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let req = common::request(&event("apigw-v2-jwt.json", method, path, body), lambda_http::Context::default());
    let res = f.handle(req).await;
    let body = match res.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        _ => Value::Null,
    };
    (res.status().as_u16(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s06_postgresql_restarted() {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let cfg = iam::config(&db, &standin);
    let store = Store::new(cfg.clone(), iam::tokens(&cfg, iam::token_cache(Arc::new(SystemClock)))).unwrap();
    let f = Function::new(api::App::new(store), Identity::with_sources(vec![Source::ApiGatewayJwt], None));
    let (status, body) = call(&f, "POST", "/api/tenants", Some(json!({ "name": "Acme" }))).await;
    assert_eq!(status, 201, "{body}");
    let tenant = body["id"].as_str().unwrap().to_string();

    let server = db.server.clone();
    tokio::task::spawn_blocking(move || server.restart()).await.unwrap();
    // Accepting connections again is not yet accepting logins: wait until it serves queries.
    testkit::pg::connect(&db.admin_url()).await.query_one("SELECT 1", &[]).await.unwrap();

    // Reads recover at once (the lost connection is replaced and the read retried).
    let (status, body) = call(&f, "GET", &format!("/api/tenants/{tenant}"), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        call(&f, "POST", &format!("/api/tenants/{tenant}/todos"), Some(json!({ "title": "after" }))).await;
    assert_eq!(status, 201, "{body}");
    let n: i64 = db.admin().await.query_one("SELECT count(*) FROM todos", &[]).await.unwrap().get(0);
    assert_eq!(n, 1, "committed data survived the restart, and the new write is there");
    assert_eq!(standin.accepted_logins(), 2);
}
