//! Plans and count quotas (issue 24): each quota refuses the create that would pass it with
//! 403 `quota_exceeded` (naming the quota, the plan and the limit) and writes nothing; creates
//! racing at the limit cannot pass it together; `GET /api/tenants/{id}` shows the plan, and the
//! use of each count to admins.
//!
//! Runs on PostgreSQL, on DSQL (`TEST_DB_ENGINE=dsql`, through the stand-in's conflict
//! detection) and with dedicated tenants (`TEST_PLACEMENT=mixed`: the todos quota is then
//! counted in the tenant's own database).

mod common;

use common::{TestApp, principal};
use futures_util::future::join_all;
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// A plan with small quotas, the default, so that every new tenant has it.
fn tiny() -> limits::Plans {
    limits::Plans::from_json(
        r#"{"default": "tiny",
            "plans": {"tiny": {"rate": 1000, "burst": 8000, "todos": 3, "members": 2,
                               "pending_invitations": 2, "tenants_per_user": 2}}}"#,
    )
    .unwrap()
}

/// The reply is the refusal of `quota` under the tiny plan.
fn assert_refused(r: &common::Reply, quota: &str, limit: i64) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.error_code(), "quota_exceeded", "{}", r.body);
    let e = &r.body["error"];
    assert_eq!(
        (e["quota"].as_str(), e["plan"].as_str(), e["limit"].as_i64()),
        (Some(quota), Some("tiny"), Some(limit))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_quota_refuses_past_its_limit_and_writes_nothing() {
    let app = TestApp::with_plans(tiny()).await;
    // Tenants a user may create: 2.
    let t = app.tenant("alice", "one").await;
    app.tenant("alice", "two").await;
    let before = app.count("tenants").await;
    let r = app.post("alice", "/api/tenants", json!({"name": "three"})).await;
    assert_refused(&r, "tenants_per_user", 2);
    assert_eq!(app.count("tenants").await, before, "a refused tenant is not created");

    // Todos per tenant: 3.
    for i in 0..3 {
        let r = app.post("alice", &format!("/api/tenants/{t}/todos"), json!({"title": format!("todo {i}")})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let r = app.post("alice", &format!("/api/tenants/{t}/todos"), json!({"title": "one too many"})).await;
    assert_refused(&r, "todos", 3);
    let listed = app.get("alice", &format!("/api/tenants/{t}/todos")).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 3, "{}", listed.body);

    // Pending invitations per tenant: 2; members per tenant: 2 (alice and one more).
    let codes = [
        app.invite("alice", &t, json!({"role": "member"})).await,
        app.invite("alice", &t, json!({"role": "viewer"})).await,
    ];
    let r = app.post("alice", &format!("/api/tenants/{t}/invitations"), json!({"role": "member"})).await;
    assert_refused(&r, "pending_invitations", 2);
    let r = app.post("bob", "/api/invitations/accept", json!({"code": codes[0]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.post("carol", "/api/invitations/accept", json!({"code": codes[1]})).await;
    assert_refused(&r, "members", 2);
    let pending = app.get("alice", &format!("/api/tenants/{t}/invitations")).await;
    assert_eq!(pending.body["items"].as_array().unwrap().len(), 1, "a refused acceptance keeps its invitation");
    let members = app.get("alice", &format!("/api/tenants/{t}/members")).await;
    assert_eq!(members.body["items"].as_array().unwrap().len(), 2, "{}", members.body);

    // The plan to every member; the use of each quota to admins only.
    let got = app.get("alice", &format!("/api/tenants/{t}")).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    assert_eq!(got.body["plan"], "tiny");
    let usage = &got.body["usage"];
    assert_eq!(usage["todos"], json!({"used": 3, "limit": 3}), "{}", got.body);
    assert_eq!(usage["members"], json!({"used": 2, "limit": 2}), "{}", got.body);
    assert_eq!(usage["pending_invitations"], json!({"used": 1, "limit": 2}), "{}", got.body);
    let as_member = app.get("bob", &format!("/api/tenants/{t}")).await;
    assert_eq!(as_member.body["plan"], "tiny");
    assert!(as_member.body.get("usage").is_none(), "usage is for admins: {}", as_member.body);

    // Room again once something goes.
    let id = listed.body["items"][0]["id"].as_str().unwrap();
    let r = app.delete("alice", &format!("/api/tenants/{t}/todos/{id}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = app.post("alice", &format!("/api/tenants/{t}/todos"), json!({"title": "in again"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_create_with_an_idempotency_key_records_nothing_and_can_be_sent_again() {
    let app = TestApp::with_plans(tiny()).await;
    let t = app.tenant("alice", "one").await;
    for i in 0..3 {
        app.post("alice", &format!("/api/tenants/{t}/todos"), json!({"title": format!("todo {i}")})).await;
    }
    let path = format!("/api/tenants/{t}/todos");
    let (r, replayed, _) = app.keyed("alice", Method::POST, &path, Some(json!({"title": "late"})), "k-1").await;
    assert_refused(&r, "todos", 3);
    assert!(!replayed);
    let listed = app.get("alice", &path).await;
    let id = listed.body["items"][0]["id"].as_str().unwrap();
    app.delete("alice", &format!("{path}/{id}")).await;
    // The key was forgotten with the 4xx: the same request now creates.
    let (r, replayed, _) = app.keyed("alice", Method::POST, &path, Some(json!({"title": "late"})), "k-1").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(!replayed);
}

/// Runs `n` requests at once, each through its own instance (its own connection), as
/// concurrent Lambda instances would; returns their replies.
async fn at_once(app: &TestApp, calls: Vec<(String, String, Value)>) -> Vec<common::Reply> {
    let instances: Vec<TestApp> = calls.iter().map(|_| app.another()).collect();
    join_all(instances.iter().zip(calls).map(|(i, (user, path, body))| async move {
        i.call_as(principal(&user), Method::POST, &path, Some(body)).await
    }))
    .await
}

/// Of racing creates with `room` left under a quota: as many succeed as there was room (on
/// PostgreSQL every other is refused; on DSQL one can also end in 503 after its conflict
/// retries), never more; every other is refused with `quota_exceeded`.
fn assert_within(replies: &[common::Reply], created: StatusCode, quota: &str, room: usize) -> usize {
    let ok = replies.iter().filter(|r| r.status == created).count();
    for r in replies.iter().filter(|r| r.status != created) {
        if r.status == StatusCode::FORBIDDEN {
            assert_eq!(r.error_code(), "quota_exceeded", "{}", r.body);
            assert_eq!(r.body["error"]["quota"], quota);
        } else {
            assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
            assert_eq!(testkit::pg::engine(), store::Engine::Dsql, "only DSQL's conflicts may give up: {}", r.body);
        }
    }
    assert!(ok <= room, "{ok} creates passed a quota with room for {room}");
    if testkit::pg::engine() == store::Engine::Postgres {
        assert_eq!(ok, room, "on PostgreSQL the racing creates queue: exactly the room passes");
    }
    assert!(replies.iter().any(|r| r.status == StatusCode::FORBIDDEN), "the race reached the limit");
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_todo_creates_cannot_pass_the_quota() {
    let app = TestApp::with_plans(tiny()).await;
    let t = app.tenant("alice", "one").await;
    app.post("alice", &format!("/api/tenants/{t}/todos"), json!({"title": "first"})).await;
    let calls = (0..5)
        .map(|i| ("alice".into(), format!("/api/tenants/{t}/todos"), json!({"title": format!("r{i}")})))
        .collect();
    let replies = at_once(&app, calls).await;
    let ok = assert_within(&replies, StatusCode::CREATED, "todos", 2);
    let listed = app.get("alice", &format!("/api/tenants/{t}/todos")).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1 + ok, "{}", listed.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_invitations_cannot_pass_the_quota() {
    let app = TestApp::with_plans(tiny()).await;
    let t = app.tenant("alice", "one").await;
    let calls =
        (0..4).map(|_| ("alice".into(), format!("/api/tenants/{t}/invitations"), json!({"role": "member"}))).collect();
    let replies = at_once(&app, calls).await;
    let ok = assert_within(&replies, StatusCode::CREATED, "pending_invitations", 2);
    let pending = app.get("alice", &format!("/api/tenants/{t}/invitations")).await;
    assert_eq!(pending.body["items"].as_array().unwrap().len(), ok, "{}", pending.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_acceptances_cannot_pass_the_members_quota() {
    // Room for invitations, one seat left of two members.
    let plans = limits::Plans::from_json(
        r#"{"default": "tiny", "plans": {"tiny": {"rate": 1000, "burst": 8000, "todos": 3, "members": 2,
                                                  "pending_invitations": 10, "tenants_per_user": 2}}}"#,
    )
    .unwrap();
    let app = TestApp::with_plans(plans).await;
    let t = app.tenant("alice", "one").await;
    let mut calls = Vec::new();
    for who in ["bob", "carol", "dave", "erin"] {
        app.user_id(who).await;
        let code = app.invite("alice", &t, json!({"role": "member"})).await;
        calls.push((who.to_string(), "/api/invitations/accept".to_string(), json!({"code": code})));
    }
    let replies = at_once(&app, calls).await;
    let ok = assert_within(&replies, StatusCode::OK, "members", 1);
    let members = app.get("alice", &format!("/api/tenants/{t}/members")).await;
    assert_eq!(members.body["items"].as_array().unwrap().len(), 1 + ok, "{}", members.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_tenant_creates_of_one_user_cannot_pass_the_quota() {
    let app = TestApp::with_plans(tiny()).await;
    app.user_id("alice").await;
    let calls =
        (0..4).map(|i| ("alice".into(), "/api/tenants".to_string(), json!({"name": format!("t{i}")}))).collect();
    let replies = at_once(&app, calls).await;
    let ok = assert_within(&replies, StatusCode::CREATED, "tenants_per_user", 2);
    let mine = app.get("alice", "/api/tenants").await;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), ok, "{}", mine.body);
}
