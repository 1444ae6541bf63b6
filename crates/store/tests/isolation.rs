//! Row-level security, checked with raw SQL as the runtime role `app_runtime`, below the API:
//! (a) with no tenant setting every tenant table shows 0 rows and takes no inserts;
//! (b) with tenant A set, tenant B's rows are invisible and cannot be updated or deleted.

use tokio_postgres::Client;

const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const B: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const UA: &str = "aaaaaaaa-1111-4000-8000-000000000001";
const UB: &str = "bbbbbbbb-1111-4000-8000-000000000002";
const TABLES: [&str; 4] = ["tenants", "users", "memberships", "todos"];

/// Two tenants with a user, a membership and two todos each, written as superuser.
async fn seed(db: &testkit::pg::TestDb) {
    db.admin()
        .await
        .batch_execute(&format!(
            "INSERT INTO tenants (id, name) VALUES ('{A}', 'A'), ('{B}', 'B');
             INSERT INTO users (id, subject, email) VALUES ('{UA}', 'ua', 'ua@example.com'), ('{UB}', 'ub', 'ub@example.com');
             INSERT INTO memberships (tenant_id, user_id, role) VALUES ('{A}', '{UA}', 'admin'), ('{B}', '{UB}', 'admin');
             INSERT INTO todos (tenant_id, title) VALUES ('{A}', 'a1'), ('{A}', 'a2'), ('{B}', 'b1'), ('{B}', 'b2');"
        ))
        .await
        .unwrap();
}

async fn count(c: &Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0)
}

/// Runs `sql` and reports whether the database refused it.
async fn refused(c: &Client, sql: &str) -> bool {
    c.batch_execute("SAVEPOINT s").await.unwrap();
    let r = c.batch_execute(sql).await;
    c.batch_execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
    match r {
        Err(e) => {
            let msg = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
            assert!(
                msg.contains("row-level security") || msg.contains("permission denied"),
                "refused by RLS or privileges, not something else: {msg}"
            );
            true
        }
        Ok(()) => false,
    }
}

async fn affected(c: &Client, sql: &str) -> u64 {
    c.execute(sql, &[]).await.unwrap()
}

#[tokio::test]
async fn without_a_tenant_setting_nothing_is_visible_or_writable() {
    let db = testkit::pg::db().await;
    seed(&db).await;
    let admin = db.admin().await;
    for t in TABLES {
        assert!(count(&admin, t).await > 0, "the superuser sees the seeded {t}");
    }
    let rt = testkit::pg::connect(&db.runtime_url()).await;
    assert_eq!(rt.query_one("SELECT current_user::text", &[]).await.unwrap().get::<_, String>(0), "app_runtime");
    rt.batch_execute("BEGIN").await.unwrap();
    for t in TABLES {
        assert_eq!(count(&rt, t).await, 0, "{t} without a tenant setting");
    }
    let new = "cccccccc-0000-4000-8000-000000000003";
    assert!(refused(&rt, &format!("INSERT INTO tenants (id, name) VALUES ('{new}', 'C')")).await);
    assert!(refused(&rt, &format!("INSERT INTO todos (tenant_id, title) VALUES ('{A}', 'sneaky')")).await);
    assert!(
        refused(&rt, &format!("INSERT INTO memberships (tenant_id, user_id, role) VALUES ('{A}', '{UB}', 'admin')"))
            .await
    );
    assert!(refused(&rt, &format!("INSERT INTO users (id, subject) VALUES ('{new}', 'someone')")).await);
    assert_eq!(affected(&rt, "UPDATE todos SET title = 'x'").await, 0);
    assert_eq!(affected(&rt, "DELETE FROM todos").await, 0);
    assert_eq!(affected(&rt, "DELETE FROM tenants").await, 0);
    rt.batch_execute("COMMIT").await.unwrap();

    // A setting that was made local to an earlier transaction is gone in the next one.
    rt.batch_execute(&format!("BEGIN; SELECT set_config('app.tenant_ids', '{{{A}}}', true); COMMIT;")).await.unwrap();
    assert_eq!(count(&rt, "todos").await, 0, "transaction-local: no leak into the next transaction");
}

#[tokio::test]
async fn with_tenant_a_set_tenant_b_is_invisible_and_untouchable() {
    let db = testkit::pg::db().await;
    seed(&db).await;
    let rt = testkit::pg::connect(&db.runtime_url()).await;
    rt.batch_execute("BEGIN").await.unwrap();
    rt.execute("SELECT set_config('app.tenant_ids', $1, true)", &[&format!("{{{A}}}")]).await.unwrap();

    let titles: Vec<String> =
        rt.query("SELECT title FROM todos ORDER BY title", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(titles, ["a1", "a2"]);
    assert_eq!(count(&rt, "tenants").await, 1);
    assert_eq!(rt.query(&format!("SELECT 1 FROM todos WHERE tenant_id = '{B}'"), &[]).await.unwrap().len(), 0);
    assert_eq!(rt.query(&format!("SELECT 1 FROM memberships WHERE tenant_id = '{B}'"), &[]).await.unwrap().len(), 0);
    assert_eq!(rt.query(&format!("SELECT 1 FROM users WHERE id = '{UB}'"), &[]).await.unwrap().len(), 0);

    assert_eq!(affected(&rt, &format!("UPDATE todos SET title = 'pwned' WHERE tenant_id = '{B}'")).await, 0);
    assert_eq!(affected(&rt, &format!("DELETE FROM todos WHERE tenant_id = '{B}'")).await, 0);
    assert_eq!(affected(&rt, &format!("UPDATE tenants SET name = 'pwned' WHERE id = '{B}'")).await, 0);
    assert_eq!(affected(&rt, &format!("DELETE FROM memberships WHERE tenant_id = '{B}'")).await, 0);
    assert!(refused(&rt, &format!("INSERT INTO todos (tenant_id, title) VALUES ('{B}', 'sneaky')")).await);
    assert!(
        refused(&rt, &format!("UPDATE todos SET tenant_id = '{B}' WHERE tenant_id = '{A}'")).await,
        "cannot move rows into B"
    );
    assert_eq!(
        affected(&rt, &format!("UPDATE todos SET title = title || '!' WHERE tenant_id = '{A}'")).await,
        2,
        "A is writable"
    );
    rt.batch_execute("COMMIT").await.unwrap();

    let admin = db.admin().await;
    let b: Vec<String> = admin
        .query(&format!("SELECT title FROM todos WHERE tenant_id = '{B}' ORDER BY title"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(b, ["b1", "b2"], "B's rows are intact");
    assert_eq!(count(&admin, "memberships").await, 2);
}

#[tokio::test]
async fn the_runtime_role_passes_the_self_check_and_the_owner_does_not() {
    let db = testkit::pg::db().await;
    let rt = testkit::pg::connect(&db.runtime_url()).await;
    store::migrate::check_runtime_role(&rt).await.expect("app_runtime is safe");
    let admin = db.admin().await;
    let err = store::migrate::check_runtime_role(&admin).await.unwrap_err();
    assert!(err.to_string().contains("superuser"), "{err}");
    admin.batch_execute("SET ROLE app_owner").await.unwrap();
    let err = store::migrate::check_runtime_role(&admin).await.unwrap_err();
    assert!(err.to_string().contains("owns tables"), "{err}");
}

#[tokio::test]
async fn migrations_run_again_are_a_no_op() {
    let db = testkit::pg::db().await;
    let admin = db.master().await;
    assert!(store::migrate::run(&admin).await.unwrap().is_empty());
    let owner: String =
        admin.query_one("SELECT tableowner::text FROM pg_tables WHERE tablename = 'todos'", &[]).await.unwrap().get(0);
    assert_eq!(owner, "app_owner");
    let rows: i64 = admin.query_one("SELECT count(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(rows as usize, store::migrate::MIGRATIONS.len());
}

#[tokio::test]
async fn a_login_role_that_can_become_the_owner_or_bypass_rls_is_refused() {
    let db = testkit::pg::db().await;
    let admin = db.admin().await;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    for (grant, why) in [("app_owner", "can act as the table owner"), ("bypass", "can act as the table owner")] {
        let role = format!("rt_{grant}_{suffix}");
        let target = if grant == "bypass" {
            let b = format!("bypass_{suffix}");
            admin.batch_execute(&format!("CREATE ROLE {b} NOLOGIN BYPASSRLS")).await.unwrap();
            b
        } else {
            grant.to_string()
        };
        // NOINHERIT, like app_runtime: the privileges are not inherited, but SET ROLE works.
        admin
            .batch_execute(&format!("CREATE ROLE {role} LOGIN NOINHERIT PASSWORD 'pw'; GRANT {target} TO {role}"))
            .await
            .unwrap();
        let url = format!("postgres://{role}:pw@{}:{}/{}", db.server.host, db.server.port, db.name);
        let client = testkit::pg::connect(&url).await;
        let err = store::migrate::check_runtime_role(&client).await.unwrap_err().to_string();
        assert!(err.contains(why), "{grant}: {err}");
    }
}

/// A member (not an admin) of tenant A, with the scope the API would give them, runs the
/// membership-write SQL themself: the policies refuse every change but leaving.
#[tokio::test]
async fn a_member_cannot_add_promote_or_remove_anyone_with_raw_sql() {
    const UM: &str = "aaaaaaaa-2222-4000-8000-000000000003";
    const UX: &str = "cccccccc-3333-4000-8000-000000000004";
    let db = testkit::pg::db().await;
    seed(&db).await;
    db.admin()
        .await
        .batch_execute(&format!(
            "INSERT INTO users (id, subject) VALUES ('{UM}', 'um'), ('{UX}', 'ux');
             INSERT INTO memberships (tenant_id, user_id, role) VALUES ('{A}', '{UM}', 'member');"
        ))
        .await
        .unwrap();
    let rt = testkit::pg::connect(&db.runtime_url()).await;
    let scope = |user: &str| {
        format!(
            "BEGIN; SELECT set_config('app.user_id', '{user}', true), set_config('app.tenant_ids', '{{{A}}}', true);"
        )
    };
    rt.batch_execute(&scope(UM)).await.unwrap();
    for sql in [
        format!("INSERT INTO memberships (tenant_id, user_id, role) VALUES ('{A}', '{UX}', 'viewer')"),
        format!("INSERT INTO memberships (tenant_id, user_id, role) VALUES ('{A}', '{UX}', 'admin')"),
        format!(
            "INSERT INTO invitations (tenant_id, code_hash, role, expires_at) VALUES ('{A}', decode(repeat('ab', 32), 'hex'), 'admin', now() + interval '1 day')"
        ),
        format!("INSERT INTO tenants (id, name) VALUES ('{UX}', 'mine')"),
    ] {
        assert!(refused(&rt, &sql).await, "{sql}");
    }
    // An invitation code the member does not have does not help.
    rt.batch_execute("SELECT set_config('app.invitation', repeat('ab', 32), true)").await.unwrap();
    assert!(
        refused(&rt, &format!("INSERT INTO memberships (tenant_id, user_id, role) VALUES ('{A}', '{UX}', 'viewer')"))
            .await
    );
    for sql in [
        format!("UPDATE memberships SET role = 'admin' WHERE tenant_id = '{A}' AND user_id = '{UM}'"),
        format!("UPDATE memberships SET role = 'viewer' WHERE tenant_id = '{A}' AND user_id = '{UA}'"),
        format!("DELETE FROM memberships WHERE tenant_id = '{A}' AND user_id = '{UA}'"),
        "DELETE FROM invitations".to_string(),
    ] {
        assert_eq!(affected(&rt, &sql).await, 0, "{sql}");
    }
    // Leaving is allowed.
    rt.batch_execute("SAVEPOINT leave").await.unwrap();
    assert_eq!(
        affected(&rt, &format!("DELETE FROM memberships WHERE tenant_id = '{A}' AND user_id = '{UM}'")).await,
        1
    );
    rt.batch_execute("ROLLBACK TO SAVEPOINT leave; COMMIT").await.unwrap();

    // The same statements as the admin do work: the refusals above are about the role.
    rt.batch_execute(&scope(UA)).await.unwrap();
    assert_eq!(
        affected(&rt, &format!("UPDATE memberships SET role = 'admin' WHERE tenant_id = '{A}' AND user_id = '{UM}'"))
            .await,
        1
    );
    assert_eq!(
        affected(&rt, &format!("INSERT INTO memberships (tenant_id, user_id, role) VALUES ('{A}', '{UX}', 'viewer')"))
            .await,
        1
    );
    rt.batch_execute("ROLLBACK").await.unwrap();

    let admin = db.admin().await;
    let roles: Vec<String> = admin
        .query(&format!("SELECT user_id::text || ' ' || role FROM memberships WHERE tenant_id = '{A}' ORDER BY 1"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(roles, [format!("{UA} admin"), format!("{UM} member")], "nothing changed");
}

#[tokio::test]
async fn the_runtime_role_has_an_idle_session_timeout_after_a_fresh_bootstrap() {
    let db = testkit::pg::empty_db().await;
    let admin = db.master().await;
    store::migrate::run(&admin).await.unwrap();
    let settings: Vec<String> = admin
        .query_one(
            "SELECT coalesce(array_agg(s), '{}') FROM pg_db_role_setting r, unnest(r.setconfig) s \
             WHERE r.setrole = 'app_runtime'::regrole AND r.setdatabase = 0",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(settings.contains(&"idle_session_timeout=10min".to_string()), "{settings:?}");
}

/// Every statement's recording variants (for `Idempotency-Key` requests: the one that makes the
/// record and the one that appends to it) are valid SQL with the statement's own columns.
#[tokio::test]
async fn every_recorded_variant_prepares_with_the_statements_columns() {
    let db = testkit::pg::db().await;
    let rt = testkit::pg::connect(&db.runtime_url()).await;
    for (q, variants) in store::Q::ALL.iter().zip(store::idempotency::recorded_statements()) {
        let plain = rt.prepare(q.sql()).await.unwrap_or_else(|e| panic!("{q:?}: {e}"));
        for sql in [&variants.first, &variants.more] {
            let recorded = rt.prepare(sql).await.unwrap_or_else(|e| {
                panic!("{q:?}: {}\n{sql}", e.as_db_error().map(|d| d.message().to_string()).unwrap_or(e.to_string()))
            });
            let types =
                |s: &tokio_postgres::Statement| s.columns().iter().map(|c| c.type_().clone()).collect::<Vec<_>>();
            assert_eq!(types(&plain), types(&recorded), "{q:?}");
        }
    }
}
