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
