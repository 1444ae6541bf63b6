//! The migration function (`APP_FUNCTION=migrate`): the real `bootstrap` process against the
//! Runtime API stand-in, logging in as the owner through the IAM-auth stand-in to a database
//! with no schema yet. It applies the migrations, is a no-op the second time, turns a failing
//! migration into a failed invocation that names it, tries again while its login is refused
//! (IAM propagating), and refuses API Gateway events; the API function refuses its event.

mod common;

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use db_auth::SystemClock;
use runtime_standin::{Outcome, RuntimeApi};
use serde_json::{Value, json};
use testkit::{iam, pg::TestDb};

const WAIT: Duration = Duration::from_secs(30);

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `bootstrap` process for `db` with `extra` settings.
async fn start(db: &TestDb, extra: &[(&str, &str)]) -> (RuntimeApi, Running, iam_standin::Standin, iam::CaFile) {
    let standin = iam::standin(db, Arc::new(SystemClock)).await;
    let ca = iam::ca_file(&standin);
    let runtime = RuntimeApi::start().await;
    let env = iam::function_env(&runtime.endpoint(), db, &standin, &ca, extra);
    let child = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .env_clear()
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bootstrap");
    (runtime, Running(child), standin, ca)
}

const MIGRATE: [(&str, &str); 3] = [("APP_FUNCTION", "migrate"), ("DB_USER", "app_owner"), ("LOG_LEVEL", "info")];

fn names() -> Vec<Value> {
    store::migrate::MIGRATIONS.iter().map(|m| json!(m.name)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_function_applies_once_and_then_has_nothing_to_do() {
    let db = testkit::pg::empty_db().await;
    let (runtime, _process, standin, _ca) = start(&db, &MIGRATE).await;

    let first = runtime.call(json!({ "action": "migrate" }), WAIT).await;
    let Some(Outcome::Response(report)) = first else { panic!("expected a report, got {first:?}") };
    assert_eq!(report, json!({ "applied": names(), "already_applied": 0 }));
    assert_eq!(standin.last_user().as_deref(), Some("app_owner"), "migrations run as the owner");

    let second = runtime.call(json!({ "action": "migrate" }), WAIT).await;
    let Some(Outcome::Response(report)) = second else { panic!("expected a report, got {second:?}") };
    assert_eq!(report, json!({ "applied": [], "already_applied": names().len() }), "a no-op");

    let admin = db.admin().await;
    let n: i64 = admin.query_one("SELECT count(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(n as usize, names().len());

    // An API Gateway event, or any other event, is not for this function.
    for event in [common::event("apigw-v2-jwt.json", "GET", "/api/me", None), json!({ "action": "drop" })] {
        let outcome = runtime.call(event, WAIT).await;
        assert!(matches!(outcome, Some(Outcome::Error { .. })), "refused: {outcome:?}");
    }
}

/// Right after `terraform apply` creates the function's IAM policy, logins can be refused until
/// IAM has propagated it: the function keeps trying, within its budget, and then migrates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_refused_right_after_deployment_is_tried_again() {
    let db = testkit::pg::empty_db().await;
    let (runtime, _process, standin, _ca) = start(&db, &MIGRATE).await;
    standin.set_refuse_logins(true);
    let call = tokio::spawn(async move { runtime.call(json!({ "action": "migrate" }), WAIT).await });
    let deadline = std::time::Instant::now() + WAIT;
    while standin.rejected_logins() < 2 {
        assert!(std::time::Instant::now() < deadline, "the function did not try again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    standin.set_refuse_logins(false);
    let outcome = call.await.unwrap();
    let Some(Outcome::Response(report)) = outcome else { panic!("expected a report, got {outcome:?}") };
    assert_eq!(report, json!({ "applied": names(), "already_applied": 0 }));
    assert_eq!(standin.accepted_logins(), 1, "one login got through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_fails_the_invocation_and_names_it() {
    let db = testkit::pg::empty_db().await;
    // Something in the way of the second migration.
    db.admin().await.batch_execute("CREATE TABLE invitations (x int)").await.unwrap();
    let (runtime, _process, _standin, _ca) = start(&db, &MIGRATE).await;
    let outcome = runtime.call(json!({ "action": "migrate" }), WAIT).await;
    let Some(Outcome::Error { body, .. }) = outcome else { panic!("expected a failed invocation, got {outcome:?}") };
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("0002_consent.sql"), "names the migration: {body}");
    assert!(message.contains("already exists"), "and says why: {body}");
    let admin = db.admin().await;
    let applied: Vec<String> = admin
        .query("SELECT name FROM schema_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(applied, ["0001_tenancy.sql"], "the ones before it stay applied, nothing after it ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_function_refuses_the_migrate_event() {
    let db = testkit::pg::db().await;
    let (runtime, _process, standin, _ca) = start(&db, &[("IDENTITY_SOURCES", "apigw_jwt")]).await;
    let outcome = runtime.call(json!({ "action": "migrate" }), WAIT).await;
    let Some(Outcome::Error { body, .. }) = outcome else { panic!("expected a failed invocation, got {outcome:?}") };
    assert!(body["errorMessage"].as_str().unwrap_or_default().contains("APP_FUNCTION=migrate"), "{body}");
    assert_eq!(standin.connections(), 0, "it never touched the database");
}

/// The EventBridge schedule invokes the API function with `{"action":"cleanup"}`: expired
/// idempotency records go, live ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_function_deletes_expired_idempotency_records_on_the_cleanup_event() {
    let db = testkit::pg::db().await;
    db.admin()
        .await
        .batch_execute(
            "INSERT INTO users (id, subject) VALUES ('aaaaaaaa-0000-4000-8000-000000000001', 'u');
             INSERT INTO idempotency_keys (user_id, tenant_id, key, fingerprint, expires_at, claim)
             SELECT 'aaaaaaaa-0000-4000-8000-000000000001', '00000000-0000-0000-0000-000000000000',
                    md5(n::text) || md5(n::text), decode(repeat('ab', 32), 'hex'),
                    now() + CASE WHEN n <= 3 THEN interval '-1 hour' ELSE interval '1 hour' END, gen_random_uuid()
             FROM generate_series(1, 5) n;",
        )
        .await
        .unwrap();
    let (runtime, _process, _standin, _ca) = start(&db, &[("IDENTITY_SOURCES", "apigw_jwt")]).await;
    let outcome = runtime.call(json!({ "action": "cleanup" }), WAIT).await;
    assert_eq!(outcome, Some(Outcome::Response(json!({ "deleted": 3 }))));
    let left: i64 = db.admin().await.query_one("SELECT count(*) FROM idempotency_keys", &[]).await.unwrap().get(0);
    assert_eq!(left, 2, "the live records stay");
}
