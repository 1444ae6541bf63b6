//! Database round trips per request, counted by the store (the client waiting for the server
//! before it can send more): a number that does not depend on the machine, so a regression
//! fails here rather than in the benchmark. With a warm connection and a known user, every
//! request is one pipelined transaction: BEGIN, the scope, the statement(s), COMMIT.

mod common;

use common::TestApp;
use http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn each_request_is_one_round_trip() {
    let t = TestApp::new().await;
    let tenant = t.tenant("alice", "Acme").await;
    let todos = format!("/api/tenants/{tenant}/todos");
    let one = t.post("alice", &todos, json!({ "title": "first" })).await.id();
    t.add_member("alice", &tenant, "bob", "viewer").await;
    let bob = t.user_id("bob").await;
    let alice = t.user_id("alice").await;
    let revoked =
        t.post("alice", &format!("/api/tenants/{tenant}/invitations"), json!({ "role": "viewer" })).await.id();
    let elsewhere = t.tenant("carol", "Elsewhere").await;
    let code = t.invite("carol", &elsewhere, json!({ "role": "viewer" })).await;
    for i in 0..25 {
        t.post("alice", &todos, json!({ "title": format!("todo {i}") })).await;
    }
    let members = format!("/api/tenants/{tenant}/members");
    if let Some(standin) = &t.standin {
        // On the DSQL engine the app logged in through the stand-in, with DSQL tokens.
        assert!(standin.accepted_logins() >= 1 && standin.rejected_logins() == 0, "{:?}", standin.last_rejection());
    }

    let cases: Vec<(&str, Method, String, Option<serde_json::Value>, StatusCode)> = vec![
        ("GET a list of 20 todos", Method::GET, format!("{todos}?limit=20"), None, StatusCode::OK),
        ("GET one todo", Method::GET, format!("{todos}/{one}"), None, StatusCode::OK),
        ("POST a todo", Method::POST, todos.clone(), Some(json!({ "title": "new" })), StatusCode::CREATED),
        ("PATCH a todo", Method::PATCH, format!("{todos}/{one}"), Some(json!({ "complete": true })), StatusCode::OK),
        ("DELETE a todo", Method::DELETE, format!("{todos}/{one}"), None, StatusCode::NO_CONTENT),
        ("GET /api/todos", Method::GET, "/api/todos".into(), None, StatusCode::OK),
        ("GET /api/me", Method::GET, "/api/me".into(), None, StatusCode::OK),
        ("GET /api/tenants", Method::GET, "/api/tenants".into(), None, StatusCode::OK),
        ("GET a tenant", Method::GET, format!("/api/tenants/{tenant}"), None, StatusCode::OK),
        (
            "PATCH a tenant",
            Method::PATCH,
            format!("/api/tenants/{tenant}"),
            Some(json!({ "name": "Acme 2" })),
            StatusCode::OK,
        ),
        ("GET members", Method::GET, members.clone(), None, StatusCode::OK),
        ("PUT a member", Method::PUT, format!("{members}/{bob}"), Some(json!({ "role": "member" })), StatusCode::OK),
        (
            "POST an invitation",
            Method::POST,
            format!("/api/tenants/{tenant}/invitations"),
            Some(json!({ "role": "viewer" })),
            StatusCode::CREATED,
        ),
        ("GET invitations", Method::GET, format!("/api/tenants/{tenant}/invitations"), None, StatusCode::OK),
        (
            "DELETE an invitation",
            Method::DELETE,
            format!("/api/tenants/{tenant}/invitations/{revoked}"),
            None,
            StatusCode::NO_CONTENT,
        ),
        (
            "accept an invitation",
            Method::POST,
            "/api/invitations/accept".into(),
            Some(json!({ "code": code })),
            StatusCode::OK,
        ),
        ("DELETE a member", Method::DELETE, format!("{members}/{bob}"), None, StatusCode::NO_CONTENT),
        ("GET /api/users", Method::GET, "/api/users".into(), None, StatusCode::OK),
        ("GET a user", Method::GET, format!("/api/users/{alice}"), None, StatusCode::OK),
        (
            "PUT a user",
            Method::PUT,
            format!("/api/users/{alice}"),
            Some(json!({ "name": "A", "email": "a@example.com" })),
            StatusCode::OK,
        ),
        (
            "POST /api/users",
            Method::POST,
            "/api/users".into(),
            Some(json!({ "name": "A", "email": "a@example.com" })),
            StatusCode::OK,
        ),
        ("POST a tenant", Method::POST, "/api/tenants".into(), Some(json!({ "name": "Other" })), StatusCode::CREATED),
        (
            "GET a tenant of someone else (404)",
            Method::GET,
            format!("/api/tenants/{}", uuid::Uuid::new_v4()),
            None,
            StatusCode::NOT_FOUND,
        ),
    ];
    for (what, method, path, body, status) in cases {
        let before = t.app.store().stats();
        let r = t.call(Some("alice"), method, &path, body).await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        let after = t.app.store().stats();
        assert_eq!(after.round_trips - before.round_trips, 1, "{what}: round trips");
        assert_eq!(after.connects, before.connects, "{what}: no new connection");
    }

    // Requests the store rejects before the database are free.
    let before = t.app.store().stats().round_trips;
    t.call(Some("alice"), Method::POST, &todos, Some(json!({ "title": "" }))).await;
    t.call(Some("alice"), Method::GET, "/api/tenants/not-a-uuid", None).await;
    assert_eq!(t.app.store().stats().round_trips, before, "invalid input never reaches the database");
}

#[tokio::test]
async fn a_new_connection_costs_a_fixed_number_of_round_trips() {
    let t = TestApp::new().await;
    let before = t.app.store().stats();
    t.get("alice", "/api/me").await;
    let after = t.app.store().stats();
    assert_eq!(after.connects - before.connects, 1);
    // The login: startup and password authentication (SCRAM: 3); on the DSQL engine, through
    // the stand-in, the TLS request and handshake (2), startup and the token as the password
    // (2). Then session settings, every statement prepared and the role self-check together
    // (1), the user's registration check (1), the request (1). Pinned so that a change to
    // connection setup is a deliberate one.
    let login = if t.standin.is_some() { 4 } else { 3 };
    assert_eq!(after.round_trips - before.round_trips, login + 3, "{before:?} -> {after:?}");
}

/// A request abandoned in the middle of a transaction (its future dropped, as by a panic or a
/// cancelled caller) leaves its connection mid-transaction: the store must not reuse it.
#[tokio::test]
async fn an_abandoned_transaction_does_not_leak_into_the_next_request() {
    // The write is held in flight by an operator's table lock, which DSQL has no equivalent of:
    // on the DSQL engine the stand-in lets it wait for that lock (it answers any other lock
    // wait at once with DSQL's conflict).
    let limits = iam_standin::dsql::Limits { lock_wait: std::time::Duration::from_secs(30), ..Default::default() };
    let t = TestApp::with_dsql_limits(limits).await;
    let tenant = t.tenant("alice", "Acme").await;
    let todos = format!("/api/tenants/{tenant}/todos");
    let admin = t.db.admin().await;
    admin.batch_execute("BEGIN; LOCK TABLE todos IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let connects = t.app.store().stats().connects;
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        t.call(Some("alice"), Method::POST, &todos, Some(json!({ "title": "abandoned" }))),
    )
    .await;
    assert!(abandoned.is_err(), "the write was blocked and then abandoned");
    admin.batch_execute("ROLLBACK").await.unwrap();
    let r = t.call(Some("alice"), Method::POST, &todos, Some(json!({ "title": "next" }))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(t.app.store().stats().connects, connects + 1, "the abandoned connection was replaced");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let titles: Vec<String> =
        admin.query("SELECT title FROM todos ORDER BY title", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    // The abandoned write may or may not have committed (its outcome was never reported), but it
    // is never part of the next request's transaction.
    assert!(titles == ["next"] || titles == ["abandoned", "next"], "{titles:?}");
}
