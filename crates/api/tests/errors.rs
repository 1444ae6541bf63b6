//! What database errors mean to a client: one test per row of the mapping (data exceptions and
//! check violations are the request's fault, 422; a row-level-security refusal looks like a row
//! that is not there, 404), and a session that the server terminates during a read is a lost
//! connection: the read is retried once, on a new connection, and succeeds.

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use http::StatusCode;
use serde_json::json;

/// The status the API answers for the database error that `sql` raises on `client`.
async fn status_for(client: &tokio_postgres::Client, sql: &str) -> (StatusCode, String) {
    let e = client.batch_execute(sql).await.expect_err(sql);
    let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
    (api::Error::from(store::Error::from_query(e)).status(), code)
}

#[tokio::test]
async fn each_database_error_class_maps_to_its_status() {
    let db = testkit::pg::db().await;
    let admin = db.admin().await;
    let runtime = testkit::pg::connect(&db.runtime_url()).await;
    let rows: [(&tokio_postgres::Client, &str, &str, StatusCode); 5] = [
        (&admin, "SELECT 'x'::int", "22P02", StatusCode::UNPROCESSABLE_ENTITY),
        (&admin, "SELECT 1 / 0", "22012", StatusCode::UNPROCESSABLE_ENTITY),
        (&admin, "SELECT '2026-13-45'::date", "22008", StatusCode::UNPROCESSABLE_ENTITY),
        (&admin, "INSERT INTO tenants (name) VALUES ('')", "23514", StatusCode::UNPROCESSABLE_ENTITY),
        (
            &runtime,
            // Refused by row-level security; on the DSQL schema (no RLS), by privileges.
            match testkit::pg::engine() {
                store::Engine::Postgres => {
                    "INSERT INTO todos (tenant_id, title) VALUES (gen_random_uuid(), 'no scope')"
                }
                store::Engine::Dsql => "SELECT * FROM schema_migrations",
            },
            "42501",
            StatusCode::NOT_FOUND,
        ),
    ];
    for (client, sql, want_code, want_status) in rows {
        let (status, code) = status_for(client, sql).await;
        assert_eq!((code.as_str(), status), (want_code, want_status), "{sql}");
    }
    // The server's internal error (XX000: the database failing, whatever the request) is a 503
    // with Retry-After, never a 500 with the server's words.
    let (status, code) =
        status_for(&admin, "DO $$ BEGIN RAISE EXCEPTION 'internal failure' USING ERRCODE = 'XX000'; END $$").await;
    assert_eq!((code.as_str(), status), ("XX000", StatusCode::SERVICE_UNAVAILABLE));
    // A unique violation stays a 409.
    admin
        .batch_execute("INSERT INTO tenants (id, name) VALUES ('aaaaaaaa-0000-4000-8000-000000000001', 'A')")
        .await
        .unwrap();
    let (status, code) =
        status_for(&admin, "INSERT INTO tenants (id, name) VALUES ('aaaaaaaa-0000-4000-8000-000000000001', 'B')").await;
    assert_eq!((code.as_str(), status), ("23505", StatusCode::CONFLICT));
}

#[tokio::test]
async fn a_read_whose_session_the_server_terminates_is_retried_once_and_succeeds() {
    // The read is held in flight by an operator's table lock, which DSQL has no equivalent of:
    // on the DSQL engine the stand-in lets it wait for that lock (it answers any other lock
    // wait at once with DSQL's conflict).
    let limits = iam_standin::dsql::Limits { lock_wait: Duration::from_secs(30), ..Default::default() };
    let t = TestApp::with_dsql_limits(limits).await;
    let tenant = t.tenant("alice", "Acme").await;
    let todos = format!("/api/tenants/{tenant}/todos");
    t.post("alice", &todos, json!({ "title": "still here" })).await;
    let before = t.app.store().stats();

    // Hold the todos table so that the read waits inside its transaction...
    let locker = t.db.admin().await;
    locker.batch_execute("BEGIN; LOCK TABLE todos IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let read = tokio::spawn({
        let t_app = t.app.clone();
        let todos = todos.clone();
        async move {
            let mut req = http::Request::get(&todos).body(bytes::Bytes::new()).unwrap();
            req.extensions_mut().insert(common::principal("alice"));
            t_app.handle(req).await
        }
    });
    // ...then terminate the session that runs it, as a failover or an operator would.
    let admin = t.db.admin().await;
    let started = Instant::now();
    let pid: i32 = loop {
        let row = admin
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE usename = 'app_runtime' AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            break row.get(0);
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the read never waited for the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    admin.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap();
    locker.batch_execute("COMMIT").await.unwrap();

    let res = read.await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{}", String::from_utf8_lossy(res.body()));
    let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
    assert_eq!(body["items"][0]["title"], "still here");
    assert_eq!(t.app.store().stats().connects - before.connects, 1, "one new connection for the retry");
}

/// A transaction that loses a race (a serialization failure at COMMIT, here raised by a deferred
/// trigger for the first attempts) is run again from the start, and the client sees one success;
/// one that keeps losing gets 503 with `Retry-After`, never a 500, and nothing is written.
#[tokio::test]
async fn a_transaction_that_conflicts_is_retried_and_then_answered_503() {
    let t = TestApp::new().await;
    let tenant = t.tenant("alice", "Acme").await;
    let todos = format!("/api/tenants/{tenant}/todos");
    let admin = t.db.admin().await;
    // A sequence counts the attempts: unlike a table, it is not rolled back with them.
    admin
        .batch_execute(
            "CREATE SEQUENCE attempts;
             CREATE FUNCTION conflict_at_commit() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
             BEGIN
               IF nextval('attempts') <= 2 OR NEW.title = 'never' THEN
                 RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001';
               END IF;
               RETURN NULL;
             END $$;
             GRANT USAGE ON SEQUENCE attempts TO PUBLIC;
             CREATE CONSTRAINT TRIGGER conflict_at_commit AFTER INSERT ON todos
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION conflict_at_commit();",
        )
        .await
        .unwrap();
    let before = t.app.store().stats().retries;
    let r = t.post("alice", &todos, json!({ "title": "after two conflicts" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(t.app.store().stats().retries - before, 2, "two attempts conflicted, the third committed");
    let count = async || -> i64 { admin.query_one("SELECT count(*) FROM todos", &[]).await.unwrap().get(0) };
    assert_eq!(count().await, 1);

    let mut req = http::Request::post(&todos)
        .header("content-type", "application/json")
        .body(bytes::Bytes::from_static(br#"{"title":"never"}"#))
        .unwrap();
    req.extensions_mut().insert(common::principal("alice"));
    let res = t.app.handle(req).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{}", String::from_utf8_lossy(res.body()));
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(count().await, 1, "nothing written");
}
