//! Deleting a tenant on the Aurora DSQL schema, where no foreign key cascades and a transaction
//! may modify at most 3,000 rows: the tenant disappears at once, its rows go in batches of a
//! bounded size, its id cannot be taken again until nothing of it is left, and the scheduled
//! cleanup finishes a purge that was cut short.

use store::{Engine, NewUser, Store, TenantId, TenantName, UserId};
use uuid::Uuid;

async fn dsql_store(db: &testkit::pg::TestDb) -> Store {
    let mut cfg = db.runtime_config();
    cfg.engine = Engine::Dsql;
    let password = store::PasswordSource::fixed(&cfg).unwrap();
    Store::new(cfg, password).unwrap()
}

async fn user(store: &Store, subject: &str) -> UserId {
    let new = NewUser { issuer: "test".into(), subject: subject.into(), name: None, email: None };
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

#[tokio::test]
async fn a_big_tenant_is_deleted_in_bounded_batches_and_its_id_stays_taken_until_it_is_gone() {
    let db = testkit::pg::db_for(Engine::Dsql).await;
    let store = dsql_store(&db).await;
    let alice = user(&store, "alice").await;
    let tenant = big_tenant(&db, &store, alice, 2000).await;
    let before = store.stats().round_trips;
    store.scoped(alice).delete_tenant(tenant).await.unwrap();
    // One transaction marks it deleted; then 900 rows per table and transaction: 2,000 todos
    // take three, the tenant's row goes in a fourth (a statement sees its tables as they were
    // when it started, so the third still saw todos), and a fifth finds nothing left.
    assert_eq!(store.stats().round_trips - before, 6, "the delete and five purge batches");
    for table in ["todos", "memberships", "invitations"] {
        assert_eq!(
            count(&db, &format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"), tenant.0).await,
            0,
            "{table}"
        );
    }
    assert_eq!(count(&db, "SELECT count(*) FROM tenants WHERE id = $1", tenant.0).await, 0);
    // Gone, its id free again.
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
    assert_eq!(store.cleanup_idempotency(1000).await.unwrap(), 0, "no idempotency record to remove");
    assert_eq!(
        count(&db, "SELECT count(*) FROM todos WHERE tenant_id = $1", tenant.0).await,
        0,
        "the cleanup purged it"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM tenants WHERE id = $1", tenant.0).await, 0);
}
