//! The Aurora DSQL schema (`migrations/dsql/`) through the migrator, on the local server: each
//! statement on its own (DSQL runs one DDL per transaction), idempotent, re-runnable after an
//! interruption; and the runtime role's self-check without row-level security.

use store::migrate::{DSQL_MIGRATIONS, check_dsql_runtime_role, dsql_statements, run_dsql};

#[tokio::test]
async fn the_dsql_schema_applies_once_and_then_is_a_no_op() {
    let db = testkit::pg::empty_db().await;
    // As the Aurora-shaped administrator, not a superuser.
    let admin = db.master().await;
    let applied = run_dsql(&admin).await.expect("the DSQL migrations apply");
    assert_eq!(applied.len(), DSQL_MIGRATIONS.len());
    assert!(run_dsql(&admin).await.unwrap().is_empty(), "nothing left to apply");
    let tables: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = 'app_owner' \
             AND tablename IN ('tenants', 'users', 'memberships', 'todos', 'invitations', 'idempotency_keys')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 6, "every table, owned by app_owner as on PostgreSQL");
    let rls: i64 = admin
        .query_one("SELECT count(*) FROM pg_class WHERE relrowsecurity AND relnamespace = 'public'::regnamespace", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rls, 0, "no row-level security: DSQL has none");
}

#[tokio::test]
async fn a_migration_interrupted_midway_runs_again_from_its_start() {
    let db = testkit::pg::empty_db().await;
    // As the Aurora-shaped administrator, not a superuser.
    let admin = db.master().await;
    // The first file's first two statements ran, then the process died before the record.
    let first = dsql_statements(DSQL_MIGRATIONS[0].sql);
    assert!(first.len() > 2, "the first file has several statements");
    admin.batch_execute("SET ROLE app_owner").await.unwrap();
    for sql in &first[..2] {
        admin.batch_execute(sql).await.unwrap();
    }
    admin.batch_execute("RESET ROLE").await.unwrap();
    let applied = run_dsql(&admin).await.expect("the interrupted file runs again");
    assert_eq!(applied.len(), DSQL_MIGRATIONS.len());
}

#[tokio::test]
async fn the_runtime_role_passes_the_dsql_self_check_and_the_owner_does_not() {
    let db = testkit::pg::empty_db().await;
    // As the Aurora-shaped administrator, not a superuser.
    let admin = db.master().await;
    run_dsql(&admin).await.unwrap();
    let runtime = testkit::pg::connect(&db.runtime_url()).await;
    check_dsql_runtime_role(&runtime).await.expect("app_runtime owns nothing");
    admin.batch_execute("SET ROLE app_owner").await.unwrap();
    let err = check_dsql_runtime_role(&admin).await.unwrap_err().to_string();
    assert!(err.contains("owns tables"), "{err}");
}

/// On the local Aurora DSQL (the stand-in's DSQL mode and its `sys` emulation), as on DSQL:
/// each `CREATE INDEX ASYNC` answers a job that the migrator waits for with `CALL
/// sys.wait_for_job`, a run interrupted midway runs again, and the runtime role's IAM identity
/// is granted with `AWS IAM GRANT`, once.
#[tokio::test]
async fn on_the_local_dsql_the_migrator_waits_for_each_index_job_and_grants_through_aws_iam() {
    let db = testkit::pg::empty_db().await;
    testkit::dsql::install_sys(&db, false).await;
    testkit::aurora::dsql_admin(&db).await;
    let clock = std::sync::Arc::new(db_auth::SystemClock);
    let standin = testkit::iam::standin_for(&db, clock, store::Engine::Dsql).await;
    let admin = testkit::dsql::client(&db, &standin, "admin").await;
    // The first file's first two statements ran, each in its own transaction, then the process
    // died before the record.
    let first = dsql_statements(DSQL_MIGRATIONS[0].sql);
    for sql in &first[..2] {
        admin.batch_execute(sql).await.unwrap();
    }
    let applied = run_dsql(&admin).await.expect("the DSQL migrations apply through the stand-in");
    assert_eq!(applied.len(), DSQL_MIGRATIONS.len());
    let async_indexes =
        DSQL_MIGRATIONS.iter().flat_map(|m| dsql_statements(m.sql)).filter(|s| s.contains("INDEX ASYNC")).count();
    assert!(async_indexes > 0);
    let jobs = |status: &'static str| {
        let admin = &admin;
        async move {
            let sql = "SELECT count(*) FROM sys.jobs WHERE status = $1";
            admin.query_one(sql, &[&status]).await.unwrap().get::<_, i64>(0) as usize
        }
    };
    assert_eq!(jobs("completed").await, async_indexes, "a job per index, each waited for");
    assert_eq!(jobs("submitted").await, 0, "none left unwaited");
    assert!(run_dsql(&admin).await.unwrap().is_empty(), "nothing left to apply");
    assert!(standin.refused_statements() == 0, "DSQL refuses none of the migrator's statements");

    let arn = "arn:aws:iam::123456789012:role/tenant-api-eu-west-1-migrate";
    store::migrate::grant_iam_role(&admin, arn).await.expect("AWS IAM GRANT");
    store::migrate::grant_iam_role(&admin, arn).await.expect("again: already granted");
    assert_eq!(testkit::dsql::role_mappings(&admin, "app_runtime", arn).await, 1);
    let runtime = testkit::dsql::client(&db, &standin, "app_runtime").await;
    check_dsql_runtime_role(&runtime).await.expect("app_runtime owns nothing");
}
