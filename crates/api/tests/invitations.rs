//! Invitations: the only way into a tenant, made by admins, worth what their maker's role is
//! worth when they are accepted.

mod common;

use common::TestApp;
use http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn invitations_round_trip() {
    let t = TestApp::new().await;
    let acme = t.tenant("alice", "Acme").await;
    let invitations = format!("/api/tenants/{acme}/invitations");

    let r = t.post("alice", &invitations, json!({ "role": "member" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    for field in ["id", "code", "role", "expires_at"] {
        assert!(r.body[field].is_string(), "{field} in {}", r.body);
    }
    assert!(r.body["email"].is_null());
    let code = r.body["code"].as_str().unwrap().to_string();
    let expires = time::OffsetDateTime::parse(
        r.body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let days = (expires - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((167..=168).contains(&days), "seven days: {days} h");

    // Listed without the code; the stored value is a hash, not the code.
    let list = t.get("alice", &invitations).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(!list.body.to_string().contains(&code));
    let stored: Vec<u8> = t.db.admin().await.query_one("SELECT code_hash FROM invitations", &[]).await.unwrap().get(0);
    assert!(!String::from_utf8_lossy(&stored).contains(&code[4..]));

    // Pending invitees are not members: they see nothing of the tenant.
    assert_eq!(t.get("bob", &format!("/api/tenants/{acme}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        t.get("alice", &format!("/api/tenants/{acme}/members")).await.body["items"].as_array().unwrap().len(),
        1
    );

    // Accept once; a second accept, by anyone, is 404.
    let r = t.post("bob", "/api/invitations/accept", json!({ "code": code })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["tenant_id"].as_str(), r.body["tenant_name"].as_str(), r.body["role"].as_str()),
        (Some(acme.as_str()), Some("Acme"), Some("member"))
    );
    assert_eq!(t.get("bob", &format!("/api/tenants/{acme}")).await.body["role"], "member");
    for who in ["bob", "carol"] {
        let again = t.post(who, "/api/invitations/accept", json!({ "code": code })).await;
        assert_eq!((again.status, again.error_code()), (StatusCode::NOT_FOUND, "not_found"), "used");
    }
    assert_eq!(t.get("alice", &invitations).await.body["items"], json!([]), "no longer pending");

    // Revoked: 404. Unknown and malformed codes: the same 404.
    let revoked = t.post("alice", &invitations, json!({ "role": "viewer" })).await;
    let path = format!("{invitations}/{}", revoked.id());
    assert_eq!(t.delete("bob", &path).await.status, StatusCode::FORBIDDEN, "members cannot revoke");
    assert_eq!(t.delete("alice", &path).await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.delete("alice", &path).await.status, StatusCode::NOT_FOUND);
    let mut messages = Vec::new();
    for code in [
        revoked.body["code"].as_str().unwrap().to_string(),
        store::InvitationCode::generate().expose().to_string(),
        "nonsense".into(),
    ] {
        let r = t.post("carol", "/api/invitations/accept", json!({ "code": code })).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        messages.push(r.body["error"]["message"].clone());
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "one answer for all: {messages:?}");

    // Expired: 404.
    let expired = t.invite("alice", &acme, json!({ "role": "viewer" })).await;
    t.db.admin().await.batch_execute("UPDATE invitations SET expires_at = now() - interval '1 second'").await.unwrap();
    assert_eq!(
        t.post("carol", "/api/invitations/accept", json!({ "code": expired })).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(t.get("alice", &invitations).await.body["items"], json!([]), "expired ones are not pending");

    // Only admins invite; outsiders learn nothing.
    assert_eq!(t.post("bob", &invitations, json!({ "role": "admin" })).await.status, StatusCode::FORBIDDEN);
    assert_eq!(t.post("carol", &invitations, json!({ "role": "admin" })).await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.get("bob", &invitations).await.status, StatusCode::FORBIDDEN);
    assert_eq!(t.get("carol", &invitations).await.status, StatusCode::NOT_FOUND);
    let r = t.post("alice", &invitations, json!({ "role": "owner" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A member who gets another invitation: 409, and the invitation stays usable.
    let second = t.invite("alice", &acme, json!({ "role": "admin" })).await;
    assert_eq!(t.post("bob", "/api/invitations/accept", json!({ "code": second })).await.status, StatusCode::CONFLICT);
    assert_eq!(t.post("dave", "/api/invitations/accept", json!({ "code": second })).await.status, StatusCode::OK);
}

/// An invitation is worth what its maker's role is worth when it is accepted: one made by an
/// admin who was since demoted, removed or deleted grants nothing, and the list names the maker.
#[tokio::test]
async fn an_invitation_dies_with_its_maker_s_admin_role() {
    let t = TestApp::new().await;
    let acme = t.tenant("alice", "Acme").await;
    t.add_member("alice", &acme, "bob", "admin").await;
    let bob = t.user_id("bob").await;
    let t = &t;
    let accept = |who: &'static str, code: String| async move {
        t.post(who, "/api/invitations/accept", json!({ "code": code })).await.status
    };
    let invitations = format!("/api/tenants/{acme}/invitations");

    // Made by bob while admin, listed with its maker.
    let demoted_code = t.invite("bob", &acme, json!({ "role": "admin" })).await;
    let listed = t.get("alice", &invitations).await;
    assert_eq!(listed.body["items"][0]["created_by"], json!(bob), "{}", listed.body);

    // Bob is demoted, leaves, and tries his own invitation: it died with his admin role.
    let r = t.put("alice", &format!("/api/tenants/{acme}/members/{bob}"), json!({ "role": "member" })).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(t.delete("bob", &format!("/api/tenants/{acme}/members/{bob}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(accept("bob", demoted_code.clone()).await, StatusCode::NOT_FOUND, "a demoted admin's invitation");
    assert_eq!(accept("carol", demoted_code).await, StatusCode::NOT_FOUND, "for anyone");

    // Made by an admin who is then removed.
    t.add_member("alice", &acme, "bob", "admin").await;
    let removed_code = t.invite("bob", &acme, json!({ "role": "member" })).await;
    assert_eq!(t.delete("alice", &format!("/api/tenants/{acme}/members/{bob}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(accept("bob", removed_code).await, StatusCode::NOT_FOUND, "a removed admin's invitation");

    // Made by an admin whose account is then deleted.
    t.add_member("alice", &acme, "bob", "admin").await;
    let deleted_code = t.invite("bob", &acme, json!({ "role": "member" })).await;
    assert_eq!(t.delete("bob", &format!("/api/users/{bob}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(accept("dave", deleted_code).await, StatusCode::NOT_FOUND, "a deleted admin's invitation");

    // An admin's invitation still works, and no dead one is listed as pending.
    let alive = t.invite("alice", &acme, json!({ "role": "member" })).await;
    let pending = t.get("alice", &invitations).await.body["items"].as_array().unwrap().len();
    assert_eq!(pending, 1, "only alice's invitation is pending");
    assert_eq!(accept("erin", alive).await, StatusCode::OK);
}

#[tokio::test]
async fn an_invitation_bound_to_an_email_needs_that_email_verified() {
    let t = TestApp::new().await;
    let acme = t.tenant("alice", "Acme").await;
    let code = t.invite("alice", &acme, json!({ "role": "member", "email": "Erin@Example.com" })).await;
    let accept =
        |who: api::Principal| t.call_as(who, Method::POST, "/api/invitations/accept", Some(json!({ "code": code })));

    let mut unverified = common::principal("erin");
    unverified.email_verified = false;
    assert_eq!(accept(unverified).await.status, StatusCode::NOT_FOUND, "the email is not verified");
    assert_eq!(accept(common::principal("frank")).await.status, StatusCode::NOT_FOUND, "another verified email");
    let mut no_email = common::principal("erin");
    no_email.email = None;
    assert_eq!(accept(no_email).await.status, StatusCode::NOT_FOUND, "no email");
    let r = accept(common::principal("erin")).await;
    assert_eq!((r.status, r.body["role"].as_str()), (StatusCode::OK, Some("member")), "{}", r.body);
}

/// An admin who leaves, or demotes themself, takes their invitations with them: nobody gets the
/// role back through one made earlier.
#[tokio::test]
async fn an_admin_who_leaves_or_steps_down_revokes_their_invitations() {
    let t = TestApp::new().await;
    let acme = t.tenant("alice", "Acme").await;
    let bob = t.user_id("bob").await;
    let member = format!("/api/tenants/{acme}/members/{bob}");
    let t = &t;
    let accept = |who: &'static str, code: String| async move {
        t.post(who, "/api/invitations/accept", json!({ "code": code })).await.status
    };

    // Bob, admin, invites, then leaves on his own.
    t.add_member("alice", &acme, "bob", "admin").await;
    let left = t.invite("bob", &acme, json!({ "role": "admin" })).await;
    assert_eq!(t.delete("bob", &member).await.status, StatusCode::NO_CONTENT);
    assert_eq!(accept("bob", left.clone()).await, StatusCode::NOT_FOUND, "a former admin's own invitation");
    assert_eq!(accept("carol", left).await, StatusCode::NOT_FOUND, "anyone else's either");

    // Bob, admin again, invites, then demotes himself.
    t.add_member("alice", &acme, "bob", "admin").await;
    let stepped_down = t.invite("bob", &acme, json!({ "role": "admin" })).await;
    let r = t.put("bob", &member, json!({ "role": "viewer" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(accept("dave", stepped_down).await, StatusCode::NOT_FOUND, "a self-demoted admin's invitation");
    let pending = t.get("alice", &format!("/api/tenants/{acme}/invitations")).await;
    assert_eq!(pending.body["items"], json!([]), "{}", pending.body);
}
