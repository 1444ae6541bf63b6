//! Users: identities keyed on (issuer, subject), registered on their first call, their profiles
//! and who may see them.

mod common;

use common::TestApp;
use http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn the_same_subject_from_two_issuers_is_two_users() {
    let t = TestApp::new().await;
    let jwt = common::principal("shared-sub");
    let mut other = common::principal("shared-sub");
    other.issuer = api::identity::LAMBDA_AUTHORIZER_ISSUER.to_string();
    let a = t.call_as(jwt.clone(), Method::GET, "/api/me", None).await;
    let b = t.call_as(other, Method::GET, "/api/me", None).await;
    assert_ne!(a.body["user"]["id"], b.body["user"]["id"]);
    let again = t.call_as(jwt, Method::GET, "/api/me", None).await;
    assert_eq!(a.body["user"]["id"], again.body["user"]["id"]);
    assert_eq!(t.counts().await[1], ("users".into(), 2));
    // Ids are random, not derived from the subject: a fresh deployment gives another id.
    let fresh = TestApp::new().await;
    let c = fresh.call_as(common::principal("shared-sub"), Method::GET, "/api/me", None).await;
    assert_ne!(a.body["user"]["id"], c.body["user"]["id"]);
}

#[tokio::test]
async fn registering_is_idempotent_under_concurrency() {
    let t = TestApp::new().await;
    let apps: Vec<_> = (0..6).map(|_| t.another()).collect();
    let replies = futures_util::future::join_all(apps.iter().map(|a| a.get("zoe", "/api/me"))).await;
    let ids: std::collections::BTreeSet<_> = replies.iter().map(|r| r.body["user"]["id"].to_string()).collect();
    assert_eq!(ids.len(), 1, "one user: {ids:?}");
    assert_eq!(t.counts().await[1], ("users".into(), 1));
}

#[tokio::test]
async fn users_profiles_and_visibility() {
    let t = TestApp::new().await;
    let acme = t.tenant("alice", "Acme").await;
    t.add_member("alice", &acme, "bob", "member").await;
    let carol = t.user_id("carol").await;
    let bob = t.user_id("bob").await;

    // Register / update own profile.
    let r = t.post("dave", "/api/users", json!({ "name": "Dave", "email": "Dave@Example.com" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "registering is dave's first call: {}", r.body);
    assert_eq!(r.headers["location"], format!("/api/users/{}", r.id()));
    assert_eq!(r.body["email"], "dave@example.com");
    let r = t.post("dave", "/api/users", json!({ "name": "Dave D", "email": "dave@example.com" })).await;
    assert_eq!((r.status, r.body["name"].as_str()), (StatusCode::OK, Some("Dave D")));
    let r = t.post("dave", "/api/users", json!({ "name": "Dave", "email": "bob@example.com" })).await;
    assert_eq!(r.status, StatusCode::OK, "emails are not unique keys: {}", r.body);

    // Co-members see each other; others do not.
    let list = t.get("alice", "/api/users").await;
    let mut emails: Vec<_> =
        list.body["items"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
    emails.sort();
    assert_eq!(emails, ["alice@example.com", "bob@example.com"]);
    assert!(
        list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u.get("subject").is_none() || u["email"] == "alice@example.com"),
        "subjects only for self"
    );
    assert_eq!(t.get("alice", &format!("/api/users/{bob}")).await.status, StatusCode::OK);
    assert_eq!(t.get("alice", &format!("/api/users/{carol}")).await.status, StatusCode::NOT_FOUND);

    // Only yourself can be changed or deleted.
    assert_eq!(
        t.put("alice", &format!("/api/users/{bob}"), json!({ "name": "X", "email": "x@example.com" })).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.put("alice", &format!("/api/users/{carol}"), json!({ "name": "X", "email": "x@example.com" })).await.status,
        StatusCode::NOT_FOUND
    );
    let r =
        t.put("bob", &format!("/api/users/{bob}"), json!({ "name": "Robert", "email": "robert@example.com" })).await;
    assert_eq!((r.status, r.body["name"].as_str()), (StatusCode::OK, Some("Robert")));
    assert_eq!(t.delete("alice", &format!("/api/users/{bob}")).await.status, StatusCode::FORBIDDEN);

    // The last admin of a tenant cannot delete themself; after the tenant is gone they can.
    let alice = t.user_id("alice").await;
    let r = t.delete("alice", &format!("/api/users/{alice}")).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::CONFLICT, "conflict"));
    assert_eq!(t.delete("bob", &format!("/api/users/{bob}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.delete("alice", &format!("/api/tenants/{acme}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.delete("alice", &format!("/api/users/{alice}")).await.status, StatusCode::NO_CONTENT);
    // A deleted user who calls again is registered again from their claims.
    assert_eq!(t.get("alice", "/api/me").await.status, StatusCode::OK);
}

/// An identity at the byte limits (an issuer of 512 bytes and a subject of 254, both multibyte)
/// registers: its index key, under 1 KiB, is one Aurora DSQL takes (on the DSQL engine the
/// stand-in refuses a longer key with 54000, which would be a 5xx here).
#[tokio::test]
async fn an_identity_at_the_byte_limits_registers() {
    let t = TestApp::new().await;
    let mut who = common::principal("unused");
    who.issuer = format!("jwt:{}", "é".repeat(254));
    who.subject = "é".repeat(127);
    assert_eq!((who.issuer.len(), who.subject.len()), (512, 254));
    let me = t.call_as(who.clone(), Method::GET, "/api/me", None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let again = t.call_as(who, Method::GET, "/api/me", None).await;
    assert_eq!(me.body["user"]["id"], again.body["user"]["id"]);
    if let Some(standin) = &t.standin {
        assert_eq!(standin.refused_statements(), 0);
    }
}
