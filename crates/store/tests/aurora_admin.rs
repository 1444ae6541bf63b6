//! The tests' administrator is shaped like Aurora's master user, and is no superuser in
//! disguise: what needs a true superuser fails for it here as on Aurora, and what the
//! deployment runs as the master user (the role bootstrap, the migrations) passes.

use tokio_postgres::error::SqlState;

#[tokio::test]
async fn the_administrator_is_shaped_like_aurora_s_master_user() {
    let db = testkit::pg::db().await;
    let master = db.master().await;
    let row = master
        .query_one(
            "SELECT current_user::text, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, \
                    pg_has_role(current_user, 'rds_superuser', 'MEMBER') \
               FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    let shape: (String, bool, bool, bool, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
    assert_eq!(shape, (testkit::pg::MASTER_USER.to_string(), false, false, true, true, true));
}

#[tokio::test]
async fn statements_that_need_a_true_superuser_fail_for_the_administrator() {
    let db = testkit::pg::db().await;
    let master = db.master().await;
    // What the role bootstrap used to run: refused on Aurora, and so here.
    for sql in [
        "ALTER ROLE app_runtime NOSUPERUSER",
        "ALTER ROLE app_owner NOBYPASSRLS",
        "CREATE ROLE not_allowed SUPERUSER",
        "ALTER SYSTEM SET work_mem = '8MB'",
        "COPY (SELECT 1) TO PROGRAM 'true'",
        "SELECT pg_read_file('postgresql.conf')",
    ] {
        let err = master.batch_execute(sql).await.expect_err(sql);
        assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{sql}: {err}");
    }
    // The previous bootstrap named NOSUPERUSER for roles that had it not; Aurora refused it.
    let earlier = "ALTER ROLE app_owner NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB";
    let err = master.batch_execute(earlier).await.expect_err(earlier);
    assert!(err.as_db_error().is_some_and(|e| e.message().contains("must be superuser")), "{err}");
}

#[tokio::test]
async fn row_level_security_applies_to_the_administrator() {
    let db = testkit::pg::db().await;
    db.admin()
        .await
        .batch_execute(
            "INSERT INTO tenants (id, name) VALUES ('00000000-0000-4000-8000-00000000000a', 'a tenant'); \
             INSERT INTO todos (tenant_id, title) VALUES ('00000000-0000-4000-8000-00000000000a', 'seen by rdsadmin only')",
        )
        .await
        .unwrap();
    let seen = |c: tokio_postgres::Client| async move {
        c.query_one("SELECT count(*) FROM todos", &[]).await.unwrap().get::<_, i64>(0)
    };
    assert_eq!(seen(db.admin().await).await, 1, "the superuser bypasses row-level security");
    assert_eq!(seen(db.master().await).await, 0, "the master user does not, as on Aurora");
}

#[tokio::test]
async fn the_role_bootstrap_and_the_migrations_run_again_as_the_administrator() {
    let db = testkit::pg::db().await;
    let master = db.master().await;
    store::migrate::bootstrap_roles(&master, false).await.expect("the bootstrap runs again");
    assert!(store::migrate::run_for(&master, db.engine).await.expect("migrations").is_empty());
    // A role that is a superuser cannot be made safe by the master user: the bootstrap refuses,
    // saying why, instead of failing on the attribute.
    db.admin().await.batch_execute("ALTER ROLE app_runtime BYPASSRLS").await.unwrap();
    let err = store::migrate::bootstrap_roles(&master, false).await.expect_err("refused").to_string();
    db.admin().await.batch_execute("ALTER ROLE app_runtime NOBYPASSRLS").await.unwrap();
    assert!(err.contains("BYPASSRLS"), "{err}");
}
