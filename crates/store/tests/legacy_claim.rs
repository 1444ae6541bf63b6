//! A user row from before issuers were recorded (no issuer) is taken over only by an identity
//! of the issuer the deployment trusted then, never by the same subject from another issuer
//! (#22 item 6). PostgreSQL only: the DSQL schema has no such rows.

use store::NewUser;

#[tokio::test]
async fn a_legacy_user_row_is_claimed_only_by_the_issuer_trusted_when_it_was_made() {
    if testkit::pg::engine() != store::Engine::Postgres {
        return;
    }
    let db = testkit::pg::db().await;
    let legacy = uuid::Uuid::new_v4();
    db.admin()
        .await
        .execute("INSERT INTO users (id, subject, issuer) VALUES ($1, 'alice', NULL)", &[&legacy])
        .await
        .unwrap();
    let store = db.runtime_store();
    let new = |issuer: &str, claims_legacy: bool| NewUser {
        issuer: issuer.into(),
        subject: "alice".into(),
        name: None,
        email: None,
        claims_legacy,
    };

    // Another issuer's "alice" is somebody else: a user of its own, the old row untouched.
    let (other, created) = store.register(&new("jwt:https://elsewhere.example", false), None).await.unwrap();
    assert!(created && other.0 != legacy, "a new user, not the legacy one");
    let issuer: Option<String> =
        db.admin().await.query_one("SELECT issuer FROM users WHERE id = $1", &[&legacy]).await.unwrap().get(0);
    assert_eq!(issuer, None, "the legacy row is still unclaimed");

    // The trusted issuer's "alice" takes it over.
    let (claimed, created) = store.register(&new("jwt:https://trusted.example", true), None).await.unwrap();
    assert_eq!((claimed.0, created), (legacy, false));
}
