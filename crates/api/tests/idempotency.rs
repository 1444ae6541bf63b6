//! Exactly-once writes with `Idempotency-Key`: for every write route, the same request twice
//! with one key gets identical answers (the second marked replayed) and changes the database
//! once; another request with the key is 422; concurrent repeats make one effect; a 4xx leaves
//! no record; and the key costs no extra round trip.

mod common;

use common::TestApp;
use http::{Method, StatusCode};
use serde_json::{Value, json};

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Sends the request twice with one key: same status, same bytes, the second replayed, and the
/// database as the first left it.
async fn twice(t: &TestApp, user: &str, method: Method, path: &str, body: Option<Value>, status: StatusCode) -> Value {
    let k = key();
    let (first, replayed, bytes) = t.keyed(user, method.clone(), path, body.clone(), &k).await;
    assert_eq!(first.status, status, "{method} {path}: {}", first.body);
    assert!(!replayed, "{method} {path}: the first answer is not a replay");
    let after_first = t.snapshot().await;
    let (second, replayed, again) = t.keyed(user, method.clone(), path, body, &k).await;
    assert_eq!(second.status, status, "{method} {path}: {}", second.body);
    assert!(replayed, "{method} {path}: the repeat is marked replayed");
    assert_eq!(again, bytes, "{method} {path}: the same answer, byte for byte");
    assert_eq!(t.snapshot().await, after_first, "{method} {path}: the repeat changed nothing");
    first.body
}

#[tokio::test]
async fn every_write_route_answers_a_repeat_from_its_record() {
    let t = TestApp::new().await;
    let tenant = t.tenant("alice", "Acme").await;
    let other = t.tenant("alice", "Other").await;
    let alice = t.user_id("alice").await;
    let base = format!("/api/tenants/{tenant}");
    let c = StatusCode::CREATED;
    let (ok, gone) = (StatusCode::OK, StatusCode::NO_CONTENT);

    twice(&t, "erin", Method::POST, "/api/users", Some(json!({ "name": "Erin", "email": "erin@example.com" })), c)
        .await;
    twice(&t, "alice", Method::POST, "/api/users", Some(json!({ "name": "Al", "email": "al@example.com" })), ok).await;
    let profile = json!({ "name": "Alice", "email": "alice@example.com" });
    twice(&t, "alice", Method::PUT, &format!("/api/users/{alice}"), Some(profile), ok).await;
    twice(&t, "alice", Method::POST, "/api/tenants", Some(json!({ "name": "Third" })), c).await;
    twice(&t, "alice", Method::PATCH, &base, Some(json!({ "name": "Acme Corp" })), ok).await;
    let invitation =
        twice(&t, "alice", Method::POST, &format!("{base}/invitations"), Some(json!({ "role": "viewer" })), c).await;
    let code = invitation["code"].clone();
    twice(&t, "carol", Method::POST, "/api/invitations/accept", Some(json!({ "code": code })), ok).await;
    let carol = t.user_id("carol").await;
    twice(&t, "alice", Method::PUT, &format!("{base}/members/{carol}"), Some(json!({ "role": "member" })), ok).await;
    let todo = twice(&t, "carol", Method::POST, &format!("{base}/todos"), Some(json!({ "title": "once" })), c).await;
    let todo = format!("{base}/todos/{}", todo["id"].as_str().unwrap());
    // With a client-chosen id, the repeat's own insert fails on that id before its record could
    // conflict with the first one's: the record answers it all the same.
    let chosen = json!({ "title": "chosen", "id": uuid::Uuid::new_v4() });
    twice(&t, "carol", Method::POST, &format!("{base}/todos"), Some(chosen), c).await;
    twice(&t, "alice", Method::POST, "/api/tenants", Some(json!({ "name": "Chosen", "id": uuid::Uuid::new_v4() })), c)
        .await;
    twice(&t, "carol", Method::PATCH, &todo, Some(json!({ "complete": true })), ok).await;
    twice(&t, "carol", Method::DELETE, &todo, None, gone).await;
    let revoked = t.post("alice", &format!("{base}/invitations"), json!({ "role": "viewer" })).await.id();
    twice(&t, "alice", Method::DELETE, &format!("{base}/invitations/{revoked}"), None, gone).await;
    twice(&t, "carol", Method::DELETE, &format!("{base}/members/{carol}"), None, gone).await;
    twice(&t, "alice", Method::DELETE, &format!("/api/tenants/{other}"), None, gone).await;

    // Who deletes themself and comes back is a new user, with no records: the repeat is 404.
    let dave = t.user_id("dave").await;
    let k = key();
    let (first, _, _) = t.keyed("dave", Method::DELETE, &format!("/api/users/{dave}"), None, &k).await;
    assert_eq!(first.status, gone);
    let (second, replayed, _) = t.keyed("dave", Method::DELETE, &format!("/api/users/{dave}"), None, &k).await;
    assert_eq!((second.status, replayed), (StatusCode::NOT_FOUND, false));
}

#[tokio::test]
async fn the_same_key_for_another_request_is_422_and_changes_nothing() {
    let t = TestApp::new().await;
    let tenant = t.tenant("alice", "Acme").await;
    let todos = format!("/api/tenants/{tenant}/todos");
    let k = key();
    let (first, _, _) = t.keyed("alice", Method::POST, &todos, Some(json!({ "title": "one" })), &k).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let before = t.snapshot().await;
    let (other, replayed, _) = t.keyed("alice", Method::POST, &todos, Some(json!({ "title": "two" })), &k).await;
    assert_eq!(
        (other.status, other.error_code(), replayed),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", false)
    );
    assert_eq!(t.snapshot().await, before);
    // The 422 left the first request's record alone: its repeat is still answered from it.
    let (repeat, replayed, _) = t.keyed("alice", Method::POST, &todos, Some(json!({ "title": "one" })), &k).await;
    assert_eq!((repeat.status, replayed, &repeat.body), (StatusCode::CREATED, true, &first.body));
    assert_eq!(t.snapshot().await, before, "still one todo");
    // Keys are the caller's: another user's request with the same key is their own.
    t.add_member("alice", &tenant, "bob", "member").await;
    let (bobs, replayed, _) = t.keyed("bob", Method::POST, &todos, Some(json!({ "title": "one" })), &k).await;
    assert_eq!((bobs.status, replayed), (StatusCode::CREATED, false));
    // A malformed key is 400.
    let (bad, _, _) = t.keyed("alice", Method::POST, &todos, Some(json!({ "title": "x" })), &"k".repeat(256)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn concurrent_repeats_make_one_effect_and_equal_answers() {
    let t = TestApp::new().await;
    let tenant = t.tenant("alice", "Acme").await;
    let todos = format!("/api/tenants/{tenant}/todos");
    let others: Vec<TestApp> = (0..4).map(|_| t.another()).collect();
    for o in &others {
        o.user_id("alice").await;
    }
    // All at once with one key: one of them runs, the others wait for it and replay its answer.
    let at_once = async |body: Value| {
        let k = key();
        let answers = futures_util::future::join_all(
            others.iter().map(|o| o.keyed("alice", Method::POST, &todos, Some(body.clone()), &k)),
        )
        .await;
        assert!(answers.iter().all(|(r, _, bytes)| r.status == StatusCode::CREATED && *bytes == answers[0].2));
        assert_eq!(answers.iter().filter(|(_, replayed, _)| !replayed).count(), 1, "one of them ran");
    };
    at_once(json!({ "title": "exactly once" })).await;
    assert_eq!(t.count("todos").await, 1);
    // The same with a client-chosen id, which the repeats' own inserts would find taken.
    at_once(json!({ "title": "chosen", "id": uuid::Uuid::new_v4() })).await;
    assert_eq!(t.count("todos").await, 2);
}

#[tokio::test]
async fn a_request_that_failed_with_a_4xx_leaves_no_record() {
    let t = TestApp::new().await;
    let tenant = t.tenant("alice", "Acme").await;
    t.add_member("alice", &tenant, "vic", "viewer").await;
    let todos = format!("/api/tenants/{tenant}/todos");
    let k = key();
    let (r, _, _) = t.keyed("vic", Method::POST, &todos, Some(json!({ "title": "mine" })), &k).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(t.count("idempotency_keys").await, 0);
    let vic = t.user_id("vic").await;
    t.put("alice", &format!("/api/tenants/{tenant}/members/{vic}"), json!({ "role": "member" })).await;
    let (r, replayed, _) = t.keyed("vic", Method::POST, &todos, Some(json!({ "title": "mine" })), &k).await;
    assert_eq!((r.status, replayed), (StatusCode::CREATED, false), "fixed and retried with the same key");
}

#[tokio::test]
async fn a_key_costs_no_round_trip_and_expired_records_are_cleaned_up() {
    let t = TestApp::new().await;
    let tenant = t.tenant("alice", "Acme").await;
    let todos = format!("/api/tenants/{tenant}/todos");
    // The first keyed request of a connection prepares the recording statements.
    t.keyed("alice", Method::POST, &todos, Some(json!({ "title": "warm" })), &key()).await;
    let before = t.app.store().stats();
    let k = key();
    let (r, _, _) = t.keyed("alice", Method::POST, &todos, Some(json!({ "title": "counted" })), &k).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(t.app.store().stats().round_trips - before.round_trips, 1, "one round trip with the key");

    // (With TEST_PLACEMENT=mixed the tenant's records are in its dedicated database: the
    // cleanup visits it too.)
    let count = async || t.count("idempotency_keys").await;
    let expire = async || {
        for admin in t.admins().await {
            admin.batch_execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'").await.unwrap();
        }
    };
    assert_eq!(count().await, 2);
    expire().await;
    let removed =
        t.app.store().cleanup_idempotency(1).await.unwrap() + t.app.store().cleanup_idempotency(100).await.unwrap();
    assert_eq!((removed, count().await), (2, 0), "in batches");
    // An expired key is a new key, cleaned up or not.
    let (again, replayed, _) = t.keyed("alice", Method::POST, &todos, Some(json!({ "title": "counted" })), &k).await;
    assert_eq!((again.status, replayed), (StatusCode::CREATED, false));
    expire().await;
    assert_eq!(count().await, 1, "expired, not cleaned up");
    let (third, replayed, _) = t.keyed("alice", Method::POST, &todos, Some(json!({ "title": "counted" })), &k).await;
    assert_eq!((third.status, replayed), (StatusCode::CREATED, false));
    assert_eq!(count().await, 1, "the expired record was replaced");
}

#[tokio::test]
async fn the_database_holds_neither_the_key_nor_an_invitations_code() {
    let t = TestApp::new().await;
    let tenant = t.tenant("alice", "Acme").await;
    let k = "a-key-only-the-client-knows";
    let path = format!("/api/tenants/{tenant}/invitations");
    let (first, _, _) = t.keyed("alice", Method::POST, &path, Some(json!({ "role": "admin" })), k).await;
    let (again, replayed, _) = t.keyed("alice", Method::POST, &path, Some(json!({ "role": "admin" })), k).await;
    let code = first.body["code"].as_str().unwrap().to_string();
    assert_eq!((again.body["code"].as_str(), replayed), (Some(code.as_str()), true), "the repeat shows the same code");
    let stored: String =
        t.db.admin()
            .await
            .query_one("SELECT string_agg(key || ' ' || results::text, ' ') FROM idempotency_keys", &[])
            .await
            .unwrap()
            .get(0);
    assert!(!stored.contains(&code[4..]), "no invitation code in the clear");
    assert!(!stored.contains(k), "no key in the clear");
    // And the code works once.
    assert_eq!(t.post("bob", "/api/invitations/accept", json!({ "code": code })).await.status, StatusCode::OK);
}
