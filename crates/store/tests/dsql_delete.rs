//! Deleting a tenant on the Aurora DSQL schema, where no foreign key cascades and a transaction
//! may modify at most 3,000 rows: the tenant disappears at once, its rows go in batches of a
//! bounded size, its id cannot be taken again until nothing of it is left, and the scheduled
//! cleanup finishes a purge that was cut short.

use store::{Engine, NewUser, Store, TenantId, TenantName, UserId};
use uuid::Uuid;

async fn dsql_store(db: &testkit::pg::TestDb) -> Store {
    let cfg = db.runtime_config();
    let password = store::PasswordSource::fixed(&cfg).unwrap();
    Store::new(cfg, password).unwrap()
}

async fn user(store: &Store, subject: &str) -> UserId {
    let new = NewUser { issuer: "test".into(), subject: subject.into(), name: None, email: None, claims_legacy: false };
    store.register(&new, None).await.unwrap().0
}

async fn count(db: &testkit::pg::TestDb, sql: &str, tenant: Uuid) -> i64 {
    db.admin().await.query_one(sql, &[&tenant]).await.unwrap().get(0)
}

/// A tenant of `todos` todos (written directly: the API would take a while) and one member.
async fn big_tenant(db: &testkit::pg::TestDb, store: &Store, admin: UserId, todos: i64) -> TenantId {
    let id = TenantId(Uuid::new_v4());
    store.scoped(admin).create_tenant(id, &TenantName::parse("big").unwrap()).await.unwrap();
    db.admin()
        .await
        .execute(
            "INSERT INTO todos (tenant_id, id, title) SELECT $1, gen_random_uuid(), 'todo ' || n FROM generate_series(1, $2::int8) n",
            &[&id.0, &todos],
        )
        .await
        .unwrap();
    id
}

/// Moves the tenant's deletion mark back past the time any transaction could still be running.
async fn age_the_mark(db: &testkit::pg::TestDb, tenant: TenantId) {
    let sql = "UPDATE tenants SET deleted_at = now() - interval '1 hour' WHERE id = $1";
    db.admin().await.execute(sql, &[&tenant.0]).await.unwrap();
}

async fn rows_of(db: &testkit::pg::TestDb, table: &str, tenant: TenantId) -> i64 {
    let column = if table == "tenants" { "id" } else { "tenant_id" };
    count(db, &format!("SELECT count(*) FROM {table} WHERE {column} = $1"), tenant.0).await
}

#[tokio::test]
async fn a_big_tenant_is_deleted_in_bounded_batches_and_its_id_stays_taken_until_the_cleanup() {
    let db = testkit::pg::db_for(Engine::Dsql).await;
    let store = dsql_store(&db).await;
    let alice = user(&store, "alice").await;
    let tenant = big_tenant(&db, &store, alice, 2000).await;
    let before = store.stats().round_trips;
    store.scoped(alice).delete_tenant(tenant).await.unwrap();
    // One transaction marks it deleted; then 330 rows per table and transaction (within 3,000
    // rows even when each index entry counts as one): 2,000 todos take seven, and an eighth
    // finds nothing left.
    assert_eq!(store.stats().round_trips - before, 9, "the delete and eight purge batches");
    for table in ["todos", "memberships", "invitations"] {
        assert_eq!(rows_of(&db, table, tenant).await, 0, "{table}");
    }
    // Its row stays, marked, until no transaction that began before the delete can still be
    // running: its id is taken until then.
    assert_eq!(rows_of(&db, "tenants", tenant).await, 1);
    let err = store.scoped(alice).create_tenant(tenant, &TenantName::parse("again").unwrap()).await.unwrap_err();
    assert!(matches!(err, store::Error::Conflict(_)), "{err:?}");
    // Later the daily cleanup removes it, and the id is free again.
    age_the_mark(&db, tenant).await;
    store.purge_deleted_tenants().await.unwrap();
    assert_eq!(rows_of(&db, "tenants", tenant).await, 0);
    store.scoped(alice).create_tenant(tenant, &TenantName::parse("again").unwrap()).await.unwrap();
}

#[tokio::test]
async fn a_purge_cut_short_leaves_nothing_visible_or_revivable_and_the_cleanup_finishes_it() {
    let db = testkit::pg::db_for(Engine::Dsql).await;
    let store = dsql_store(&db).await;
    let (alice, mallory) = (user(&store, "alice").await, user(&store, "mallory").await);
    let tenant = big_tenant(&db, &store, alice, 50).await;
    // The delete committed, the purge never ran (the instance died): marked, rows still there.
    db.admin().await.execute("UPDATE tenants SET deleted_at = now() WHERE id = $1", &[&tenant.0]).await.unwrap();
    let alice_view = store.scoped(alice);
    assert!(matches!(alice_view.get_tenant(tenant).await, Err(store::Error::NotFound)));
    let page = alice_view.list_all_todos(Default::default(), Default::default()).await.unwrap();
    assert!(page.items.is_empty(), "none of its todos is visible");
    // Its id is still taken: nobody can create it again and find its rows.
    let err = store.scoped(mallory).create_tenant(tenant, &TenantName::parse("mine now").unwrap()).await.unwrap_err();
    assert!(matches!(err, store::Error::Conflict(_)), "{err:?}");
    assert_eq!(store.purge_deleted_tenants().await.unwrap(), 1, "one deleted tenant to finish");
    assert_eq!(rows_of(&db, "todos", tenant).await, 0, "the cleanup purged it");
    // A write that began before the delete and committed after the purge (it only read the
    // tenant's row, so nothing conflicted) is removed by a later cleanup: the row is still marked.
    db.admin().await.execute("INSERT INTO todos (tenant_id, title) VALUES ($1, 'late')", &[&tenant.0]).await.unwrap();
    age_the_mark(&db, tenant).await;
    store.purge_deleted_tenants().await.unwrap();
    assert_eq!(rows_of(&db, "todos", tenant).await, 0, "the late row too");
    assert_eq!(rows_of(&db, "tenants", tenant).await, 0);
}
