//! Silo tenants' memberships and deletes against faults (#22 items 3 and 4): a membership
//! change fences the dedicated database's copy before it commits, so that no fault leaves a
//! copy that serves a removed member; a deleted dedicated tenant is fenced away in its database
//! before the control database forgets it.

use store::{
    Error, TenantId, TenantName, TodoFilter, TodoId,
    placement::mover::{Direction, Options},
};
use testkit::silo::{Silo, first_page, tenant, todo, user};
use tokio_postgres::Client;
use uuid::Uuid;

async fn silo() -> Silo {
    Silo::new().await
}

async fn copies(c: Client, t: TenantId) -> i64 {
    c.query_one("SELECT count(*) FROM memberships WHERE tenant_id = $1", &[&t.0]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_is_refused_on_the_next_request_to_a_dedicated_tenant() {
    let silo = silo().await;
    let a = silo.instance();
    let (alice, bob) = (user(&a, "alice").await, user(&a, "bob").await);
    let t = tenant(&a, alice, "acme").await;
    silo.move_to(t, Direction::ToDedicated, &Options::default()).await.unwrap();
    let admin = silo.control.admin().await;
    admin
        .execute("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'member')", &[&t.0, &bob.0])
        .await
        .unwrap();
    // Each member's first request makes the dedicated database's copy of their membership.
    a.scoped(alice).list_todos(t, TodoFilter::default(), first_page()).await.unwrap();
    todo(&a, bob, t, "bob's").await.unwrap();
    let copies = |c: Client| async move {
        c.query_one("SELECT count(*) FROM memberships WHERE tenant_id = $1", &[&t.0]).await.unwrap().get::<_, i64>(0)
    };
    assert_eq!(copies(silo.dedicated.admin().await).await, 2, "alice's and bob's copies");
    // Demoted: refused writes at once.
    a.scoped(alice).set_member_role(t, bob, store::Role::Viewer).await.unwrap();
    assert!(matches!(todo(&a, bob, t, "no").await, Err(Error::Forbidden)));
    a.scoped(bob).list_todos(t, TodoFilter::default(), first_page()).await.unwrap();
    // A request of bob's reads his membership from the control database (signed, for the
    // generation it saw) just before the removal...
    let generation = silo.generation(t, bob).await;
    let as_bob = |db: &testkit::pg::TestDb| {
        let url = db.runtime_url();
        async move {
            let c = testkit::pg::connect(&url).await;
            c.batch_execute(&format!("SET app.user_id = '{}'", bob.0)).await.unwrap();
            c
        }
    };
    let read = as_bob(&silo.control)
        .await
        .query_one("SELECT grant_role, issued, mac FROM app_member_grant($1, $2)", &[&t.0, &generation])
        .await
        .unwrap();
    let (role, issued, mac): (String, i64, Vec<u8>) = (read.get(0), read.get(1), read.get(2));
    // Removed: refused on the next request, from this instance and from another.
    a.scoped(alice).remove_member(t, bob).await.unwrap();
    for store in [&a, &silo.instance()] {
        let r = store.scoped(bob).list_todos(t, TodoFilter::default(), first_page()).await;
        assert!(matches!(r, Err(Error::NotFound)), "{r:?}");
    }
    // A user who was never a member gets the same 404, and no copy.
    let eve = user(&a, "eve").await;
    assert!(matches!(a.scoped(eve).get_todo(t, TodoId(Uuid::new_v4())).await, Err(Error::NotFound)));
    assert_eq!(copies(silo.dedicated.admin().await).await, 1, "only alice's copy is left");
    // ...and comes to copy it after: the generation moved on, the copy is refused.
    let late: String = as_bob(&silo.dedicated)
        .await
        .query_one("SELECT app_member_copy($1, $2, $3, $4, $5)", &[&t.0, &role, &generation, &issued, &mac])
        .await
        .unwrap()
        .get(0);
    assert_eq!(late, "refused", "a late copy of a removed membership is refused");
    assert_eq!(copies(silo.dedicated.admin().await).await, 1);
    // Carol deletes her account: her copy goes with it (a warm instance may still know her id).
    let carol = user(&a, "carol").await;
    admin
        .execute("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'member')", &[&t.0, &carol.0])
        .await
        .unwrap();
    a.scoped(carol).list_todos(t, TodoFilter::default(), first_page()).await.unwrap();
    assert_eq!(copies(silo.dedicated.admin().await).await, 2);
    a.scoped(carol).delete_user(carol).await.unwrap();
    assert_eq!(copies(silo.dedicated.admin().await).await, 1, "the deleted account's copy is gone");
    let r = a.scoped(carol).list_todos(t, TodoFilter::default(), first_page()).await;
    assert!(matches!(r, Err(Error::NotFound)), "{r:?}");
}

/// The dedicated database fails after the change committed in the control database (the fence
/// that lifts the block): the removal stands (the failure is logged), the copy went before the
/// change, and the removed member's next request, from the warm instance that served them, is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_is_refused_when_the_dedicated_database_fails_during_the_removal() {
    let silo = silo().await;
    let a = silo.instance();
    let (alice, bob) = (user(&a, "alice").await, user(&a, "bob").await);
    let t = tenant(&a, alice, "acme").await;
    silo.move_to(t, Direction::ToDedicated, &Options::default()).await.unwrap();
    silo.control
        .admin()
        .await
        .execute("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'member')", &[&t.0, &bob.0])
        .await
        .unwrap();
    todo(&a, bob, t, "bob's").await.unwrap();
    assert_eq!(copies(silo.dedicated.admin().await, t).await, 1, "bob's copy serves him");
    // From now on the dedicated database fails every fence that lifts a block.
    silo.dedicated
        .admin()
        .await
        .batch_execute(
            "CREATE FUNCTION fail_lift() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN RAISE EXCEPTION 'the dedicated database fails'; END $$; \
             CREATE TRIGGER fail_lift BEFORE UPDATE ON member_fences FOR EACH ROW \
               WHEN (NEW.blocked_until IS NULL) EXECUTE FUNCTION fail_lift()",
        )
        .await
        .unwrap();
    let removed = a.scoped(alice).remove_member(t, bob).await;
    assert!(removed.is_ok(), "the change stands: {removed:?}");
    let still: i64 = silo
        .control
        .admin()
        .await
        .query_one("SELECT count(*) FROM memberships WHERE tenant_id = $1 AND user_id = $2", &[&t.0, &bob.0])
        .await
        .unwrap()
        .get(0);
    assert_eq!(still, 0, "the removal committed in the control database");
    assert_eq!(copies(silo.dedicated.admin().await, t).await, 0, "bob's copy went before the change");
    for store in [&a, &silo.instance()] {
        let r = store.scoped(bob).list_todos(t, TodoFilter::default(), first_page()).await;
        assert!(matches!(r, Err(Error::NotFound | Error::Unavailable { .. })), "refused: {r:?}");
        assert!(matches!(todo(store, bob, t, "no").await, Err(Error::NotFound | Error::Unavailable { .. })));
    }
    assert_eq!(copies(silo.dedicated.admin().await, t).await, 0, "and no copy was made for him again");
    // Alice is served as before.
    todo(&a, alice, t, "alice's").await.unwrap();
}

/// The dedicated database cannot be reached when the change starts: nothing changes anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_change_is_refused_before_anything_changes_when_the_dedicated_database_is_down() {
    let silo = silo().await;
    let a = silo.instance();
    let (alice, bob) = (user(&a, "alice").await, user(&a, "bob").await);
    let t = tenant(&a, alice, "acme").await;
    silo.move_to(t, Direction::ToDedicated, &Options::default()).await.unwrap();
    let control = silo.control.admin().await;
    control
        .execute("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'member')", &[&t.0, &bob.0])
        .await
        .unwrap();
    todo(&a, bob, t, "bob's").await.unwrap();
    silo.silo_standin.set_refuse_connections(true);
    silo.silo_standin.drop_sessions();
    let r = a.scoped(alice).remove_member(t, bob).await;
    assert!(matches!(r, Err(Error::Unavailable { .. } | Error::ConnectTimeout { .. })), "{r:?}");
    let kept: i64 = control
        .query_one("SELECT count(*) FROM memberships WHERE tenant_id = $1 AND user_id = $2", &[&t.0, &bob.0])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 1, "the removal did not happen");
    silo.silo_standin.set_refuse_connections(false);
}

/// A dedicated tenant whose rows its database fails to remove after the delete: a tenant
/// re-created with the same id, asked for by an instance whose placement cache still points
/// there, never sees the deleted tenant's todos.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_dedicated_tenant_is_fenced_in_its_database_before_it_is_forgotten() {
    let silo = silo().await;
    let (a, b) = (silo.instance(), silo.instance());
    let (alice, mallory) = (user(&a, "alice").await, user(&a, "mallory").await);
    let t = tenant(&a, alice, "acme").await;
    todo(&a, alice, t, "secret plans").await.unwrap();
    silo.move_to(t, Direction::ToDedicated, &Options::default()).await.unwrap();
    // Both instances learn where the tenant lives; `a` deletes it (and forgets), `b` does not.
    for store in [&a, &b] {
        store.scoped(alice).list_todos(t, TodoFilter::default(), first_page()).await.unwrap();
    }
    // The dedicated database will fail to remove the tenant's rows.
    silo.dedicated
        .admin()
        .await
        .batch_execute(
            "CREATE FUNCTION fail_drop() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN RAISE EXCEPTION 'the dedicated database fails'; END $$; \
             CREATE TRIGGER fail_drop BEFORE DELETE ON tenants FOR EACH ROW EXECUTE FUNCTION fail_drop()",
        )
        .await
        .unwrap();
    a.scoped(alice).delete_tenant(t).await.unwrap();
    assert_eq!(silo.todos_in(&silo.dedicated, t).await.len(), 1, "the old rows are still there");
    let fence: Option<String> = silo
        .dedicated
        .admin()
        .await
        .query_opt("SELECT state FROM tenant_fences WHERE tenant_id = $1", &[&t.0])
        .await
        .unwrap()
        .map(|r| r.get(0));
    assert_eq!(fence.as_deref(), Some("away"), "fenced away before the control database forgot it");
    // Mallory re-creates a tenant with that id (ids can be chosen by clients), through the
    // instance whose cache still sends that id to the dedicated database.
    b.scoped(mallory).create_tenant(t, &TenantName::parse("acme again").unwrap()).await.unwrap();
    let page = b.scoped(mallory).list_todos(t, TodoFilter::default(), first_page()).await.unwrap();
    assert!(page.items.is_empty(), "the deleted tenant's todos: {:?}", page.items);
    let r = b.scoped(mallory).get_todo(t, TodoId(silo.todos_in(&silo.dedicated, t).await[0])).await;
    assert!(matches!(r, Err(Error::NotFound)), "{r:?}");
}

/// A dedicated database whose key scripts/migrate.sh has not installed yet: its tenant is not
/// deleted unfenced, the delete is refused (503) and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_tenant_without_a_key_is_not_deleted_unfenced() {
    let silo = silo().await;
    let a = silo.instance();
    let alice = user(&a, "alice").await;
    let t = tenant(&a, alice, "acme").await;
    silo.move_to(t, Direction::ToDedicated, &Options::default()).await.unwrap();
    let control = silo.control.admin().await;
    control.execute("DELETE FROM database_keys", &[]).await.unwrap();
    let r = a.scoped(alice).delete_tenant(t).await;
    assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
    let kept: i64 = control.query_one("SELECT count(*) FROM tenants WHERE id = $1", &[&t.0]).await.unwrap().get(0);
    assert_eq!(kept, 1, "the tenant is still there");
}
