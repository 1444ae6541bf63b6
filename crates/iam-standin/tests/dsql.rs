//! The stand-in's DSQL mode fails the way Aurora DSQL fails: each rule refuses a statement
//! DSQL refuses, with DSQL's SQLSTATE (table-driven); the limits refuse with DSQL's errors;
//! concurrent writers conflict (40001, OC000) instead of waiting for each other's locks.
//! Against a real PostgreSQL behind the stand-in, as the tests of the DSQL suite run.

use std::time::Duration;

use iam_standin::{Config, Standin, dsql::Limits};
use testkit::{iam::HOST, pg::TestDb};
use tokio_postgres::Client;

/// A stand-in in DSQL mode with `limits` in front of a fresh DSQL-schema database (its `sys`
/// emulation included), with DSQL's `admin` role.
async fn local_dsql(limits: Limits) -> (TestDb, Standin) {
    let db = testkit::pg::db_for(store::Engine::Dsql).await;
    testkit::aurora::dsql_admin(&db).await;
    let mut config = Config::dsql(HOST, testkit::iam::REGION, testkit::iam::upstream(&db.server));
    config.dsql_rules = Some(limits);
    let standin = Standin::start(config).await.expect("the stand-in starts");
    (db, standin)
}

async fn admin(db: &TestDb, standin: &Standin) -> Client {
    testkit::dsql::client(db, standin, "admin").await
}

/// The SQLSTATE and message of a failed statement.
fn refusal(result: Result<impl std::fmt::Debug, tokio_postgres::Error>) -> (String, String) {
    let e = result.expect_err("DSQL refuses this");
    let db = e.as_db_error().unwrap_or_else(|| panic!("a server error, not {e:?}"));
    (db.code().code().to_string(), db.message().to_string())
}

/// A table of `admin`'s with one secondary index (built as `CREATE INDEX ASYNC`), so each row
/// written changes two entries.
async fn table_with_an_index(c: &Client) {
    c.batch_execute("CREATE TABLE lim (id int PRIMARY KEY, v text)").await.unwrap();
    let job = c.simple_query("CREATE INDEX ASYNC lim_v_idx ON lim (v)").await.unwrap();
    assert!(
        job.iter().any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get("job_id").is_some())),
        "CREATE INDEX ASYNC answers a job id"
    );
}

#[tokio::test]
async fn each_rule_refuses_what_dsql_refuses_with_its_sqlstate() {
    let (db, standin) = local_dsql(Limits::default()).await;
    let c = admin(&db, &standin).await;
    // (statement, SQLSTATE): each one, on its own, as DSQL answers it.
    let cases: &[(&str, &str)] = &[
        ("SELECT id FROM todos FOR SHARE", "0A000"),
        ("SELECT id FROM todos FOR KEY SHARE", "0A000"),
        ("SELECT id FROM todos FOR NO KEY UPDATE", "0A000"),
        ("SELECT t.id FROM tenants t WHERE t.id IN (SELECT tenant_id FROM todos FOR SHARE)", "0A000"),
        ("LOCK TABLE todos IN SHARE MODE", "0A000"),
        ("SELECT pg_advisory_lock(1)", "42883"),
        ("SELECT pg_try_advisory_xact_lock(1)", "42883"),
        ("TRUNCATE todos", "0A000"),
        ("CREATE TEMPORARY TABLE scratch (id int)", "0A000"),
        ("BEGIN; SAVEPOINT a", "0A000"),
        ("CREATE SEQUENCE numbers", "0A000"),
        ("SELECT lastval()", "42883"),
        ("CREATE TRIGGER t BEFORE INSERT ON todos FOR EACH ROW EXECUTE FUNCTION app_touch()", "0A000"),
        ("CREATE TABLE named (id uuid PRIMARY KEY, name text COLLATE \"C\")", "0A000"),
        ("CREATE EXTENSION pgcrypto", "0A000"),
        ("CREATE FUNCTION one() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$", "0A000"),
        ("CREATE INDEX todos_title_idx ON todos (title)", "0A000"),
    ];
    let mut wrong = Vec::new();
    for (sql, code) in cases {
        let got = c.batch_execute(sql).await;
        let _ = c.batch_execute("ROLLBACK").await;
        match got {
            Err(e) if e.code().is_some_and(|c| c.code() == *code) => {}
            other => wrong.push(format!("{sql}: expected {code}, got {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "rules that do not hold:\n{}", wrong.join("\n"));
    assert!(standin.refused_statements() >= cases.len() as u64, "the stand-in refused them, not PostgreSQL");

    // Prepared (the extended protocol, as the API's statements are): refused at prepare time.
    let (code, message) = refusal(c.prepare("SELECT id FROM todos WHERE tenant_id = $1 FOR KEY SHARE").await);
    assert_eq!(code, "0A000", "{message}");
    // What DSQL supports goes through.
    c.batch_execute("BEGIN; SELECT id FROM todos FOR UPDATE; COMMIT").await.expect("FOR UPDATE is DSQL's");
    // Sequences with an explicit cache, and foreign keys, DSQL supports (since 2026; AWS's
    // sequence and foreign-key pages).
    c.batch_execute("CREATE SEQUENCE numbers CACHE 65536").await.expect("a sequence with its cache");
    c.batch_execute("SELECT nextval('numbers')").await.expect("nextval");
    c.batch_execute("CREATE TABLE child (id uuid PRIMARY KEY, tenant_id uuid REFERENCES tenants (id))")
        .await
        .expect("a foreign key");
    c.query("SELECT id FROM todos WHERE tenant_id = $1 FOR UPDATE", &[&uuid_nil()]).await.expect("prepared FOR UPDATE");
}

fn uuid_nil() -> uuid::Uuid {
    uuid::Uuid::nil()
}

#[tokio::test]
async fn a_transaction_has_one_ddl_statement_and_never_ddl_with_dml() {
    let (db, standin) = local_dsql(Limits::default()).await;
    let c = admin(&db, &standin).await;
    c.batch_execute("BEGIN").await.unwrap();
    c.batch_execute("CREATE TABLE one (id int PRIMARY KEY)").await.expect("the first DDL statement");
    let (code, message) = refusal(c.batch_execute("CREATE TABLE two (id int PRIMARY KEY)").await);
    assert_eq!(code, "0A000", "{message}");
    c.batch_execute("ROLLBACK").await.unwrap();

    c.batch_execute("BEGIN").await.unwrap();
    c.execute("DELETE FROM todos WHERE tenant_id = $1", &[&uuid_nil()]).await.expect("DML first");
    let (code, message) = refusal(c.batch_execute("CREATE TABLE three (id int PRIMARY KEY)").await);
    assert_eq!((code.as_str(), message.contains("ddl and dml")), ("0A000", true), "{message}");
    c.batch_execute("ROLLBACK").await.unwrap();

    c.batch_execute("BEGIN").await.unwrap();
    c.batch_execute("CREATE TABLE four (id int PRIMARY KEY)").await.unwrap();
    let (code, message) = refusal(c.execute("DELETE FROM todos WHERE tenant_id = $1", &[&uuid_nil()]).await);
    assert_eq!(code, "0A000", "{message}");
    c.batch_execute("ROLLBACK").await.unwrap();

    // One DDL statement per transaction commits.
    c.batch_execute("BEGIN; CREATE TABLE five (id int PRIMARY KEY); COMMIT").await.expect("one DDL statement");
}

#[tokio::test]
async fn rows_and_index_entries_past_the_limit_refuse_the_commit_with_54000() {
    let limits = Limits { rows_per_transaction: 10, ..Limits::default() };
    let (db, standin) = local_dsql(limits).await;
    let c = admin(&db, &standin).await;
    table_with_an_index(&c).await;
    let insert = c.prepare("INSERT INTO lim (id, v) VALUES ($1, $2)").await.unwrap();
    // Five rows, each with its index entry: ten, the limit.
    c.batch_execute("BEGIN").await.unwrap();
    for id in 0..5 {
        c.execute(&insert, &[&id, &format!("v{id}")]).await.unwrap();
    }
    c.batch_execute("COMMIT").await.expect("ten changes commit");
    assert_eq!(standin.max_transaction_rows(), 10);
    // Six: twelve.
    c.batch_execute("BEGIN").await.unwrap();
    for id in 5..11 {
        c.execute(&insert, &[&id, &format!("v{id}")]).await.unwrap();
    }
    let (code, message) = refusal(c.batch_execute("COMMIT").await);
    assert_eq!(code, "54000", "{message}");
    assert_eq!(standin.max_transaction_rows(), 12);
    let rows: i64 = c.query_one("SELECT count(*) FROM lim", &[]).await.unwrap().get(0);
    assert_eq!(rows, 5, "the refused transaction changed nothing");
}

#[tokio::test]
async fn bytes_age_and_index_keys_past_the_limits_are_refused_with_54000() {
    let limits = Limits { bytes_per_transaction: 2_000, transaction_age: Duration::from_secs(1), ..Limits::default() };
    let (db, standin) = local_dsql(limits).await;
    let c = admin(&db, &standin).await;
    table_with_an_index(&c).await;
    c.batch_execute("CREATE TABLE big (id int PRIMARY KEY, body text)").await.unwrap();

    c.batch_execute("BEGIN").await.unwrap();
    c.execute("INSERT INTO big (id, body) VALUES ($1, $2)", &[&1, &"x".repeat(3_000)]).await.unwrap();
    let (code, message) = refusal(c.batch_execute("COMMIT").await);
    assert_eq!(code, "54000", "{message}");

    // An index key over 1 KiB (600 two-byte characters), refused when written.
    let (code, message) = refusal(c.execute("INSERT INTO lim (id, v) VALUES (1, $1)", &[&"é".repeat(600)]).await);
    assert_eq!(code, "54000", "{message}");
    c.execute("INSERT INTO lim (id, v) VALUES (1, $1)", &[&"é".repeat(500)]).await.expect("1,000 bytes fit");

    // A transaction older than its limit: its next statement and its commit are refused.
    c.batch_execute("BEGIN; SELECT 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (code, message) = refusal(c.batch_execute("SELECT 1").await);
    assert_eq!(code, "54000", "{message}");
    c.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn connections_past_the_limit_or_the_burst_are_refused() {
    let limits = Limits { max_connections: 2, ..Limits::default() };
    let (db, standin) = local_dsql(limits).await;
    let _a = admin(&db, &standin).await;
    let _b = admin(&db, &standin).await;
    let third = testkit::dsql::try_client(&db, &standin, "admin").await;
    third.expect_err("a third connection is over the limit");
    assert_eq!(
        (standin.accepted_logins(), standin.refused_statements()),
        (2, 1),
        "refused by the limit, after a valid token"
    );

    let limits = Limits { connection_burst: 2, connection_rate: 1, ..Limits::default() };
    let (db, standin) = local_dsql(limits).await;
    let _a = admin(&db, &standin).await;
    let _b = admin(&db, &standin).await;
    let third = testkit::dsql::try_client(&db, &standin, "admin").await;
    third.expect_err("a third connection at once is over the burst");
    assert_eq!((standin.accepted_logins(), standin.refused_statements()), (2, 1));
}

#[tokio::test]
async fn writers_of_one_row_conflict_at_once_instead_of_waiting() {
    let (db, standin) = local_dsql(Limits::default()).await;
    let (one, two) = (admin(&db, &standin).await, admin(&db, &standin).await);
    table_with_an_index(&one).await;
    one.batch_execute("INSERT INTO lim (id, v) VALUES (1, 'a'), (2, 'b')").await.unwrap();

    // Both update row 1: the second is refused while the first is still open (it did not wait).
    one.batch_execute("BEGIN; UPDATE lim SET v = 'one' WHERE id = 1").await.unwrap();
    two.batch_execute("BEGIN").await.unwrap();
    let (code, message) = refusal(two.batch_execute("UPDATE lim SET v = 'two' WHERE id = 1").await);
    assert_eq!((code.as_str(), message.contains("OC000")), ("40001", true), "{message}");
    two.batch_execute("ROLLBACK").await.unwrap();
    one.batch_execute("COMMIT").await.expect("the first writer commits");

    // One reads row 2 FOR UPDATE; a delete of that row is refused, not queued.
    one.batch_execute("BEGIN; SELECT v FROM lim WHERE id = 2 FOR UPDATE").await.unwrap();
    let (code, _) = refusal(two.execute("DELETE FROM lim WHERE id = 2", &[]).await);
    assert_eq!(code, "40001");
    one.batch_execute("COMMIT").await.unwrap();

    // Snapshot isolation: a row changed and committed since the snapshot cannot be written.
    one.batch_execute("BEGIN; SELECT v FROM lim WHERE id = 2").await.unwrap();
    two.execute("UPDATE lim SET v = 'changed' WHERE id = 2", &[]).await.unwrap();
    let (code, _) = refusal(one.execute("UPDATE lim SET v = 'stale' WHERE id = 2", &[]).await);
    assert_eq!(code, "40001");
    one.batch_execute("ROLLBACK").await.unwrap();
    assert!(standin.conflicts_answered() >= 3);
}

#[tokio::test]
async fn sys_objects_answer_as_dsql_does() {
    let (db, standin) = local_dsql(Limits::default()).await;
    let c = admin(&db, &standin).await;
    table_with_an_index(&c).await;
    let job: String =
        c.query_one("SELECT job_id FROM sys.jobs WHERE object_name = 'lim_v_idx'", &[]).await.unwrap().get(0);
    let status: String = c.query_one("SELECT status FROM sys.jobs WHERE job_id = $1", &[&job]).await.unwrap().get(0);
    assert_eq!(status, "submitted");
    let (code, _) = refusal(c.batch_execute(&format!("SELECT sys.wait_for_job('{job}')")).await);
    assert_eq!(code, "42809", "sys.wait_for_job is a procedure");
    let done = c.simple_query(&format!("CALL sys.wait_for_job('{job}')")).await.unwrap();
    assert!(done.iter().any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("t"))));

    let arn = "arn:aws:iam::123456789012:role/tenant-api-eu-west-1-runtime";
    c.batch_execute(&format!("AWS IAM GRANT app_runtime TO '{arn}'")).await.expect("AWS IAM GRANT");
    assert_eq!(testkit::dsql::role_mappings(&c, "app_runtime", arn).await, 1);
    c.batch_execute(&format!("AWS IAM REVOKE app_runtime FROM '{arn}'")).await.expect("AWS IAM REVOKE");
    let mapped: i64 =
        c.query_one("SELECT count(*) FROM sys.iam_pg_role_mappings WHERE arn = $1", &[&arn]).await.unwrap().get(0);
    assert_eq!(mapped, 0);
    // The runtime role may not map identities to roles.
    let runtime = testkit::dsql::client(&db, &standin, "app_runtime").await;
    let (code, _) = refusal(runtime.batch_execute(&format!("AWS IAM GRANT admin TO '{arn}'")).await);
    assert_eq!(code, "42501");
}
