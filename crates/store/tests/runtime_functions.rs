//! Every function that runs as the owner (`SECURITY DEFINER`) and that the runtime role may
//! execute, called with hostile arguments by the runtime role's own login, with `app.user_id`
//! set to the attacker (#22 item 2): none reads, adds, promotes or removes anything beyond what
//! the API lets that user do, and none leaves a scope behind. docs/isolation.md lists them.

use store::{
    TenantId, UserId,
    placement::mover::{Direction, Options},
};
use testkit::{
    pg::TestDb,
    silo::{Silo, tenant, todo, user},
};
use tokio_postgres::Client;
use uuid::Uuid;

/// The functions the runtime role may execute that run as their owner.
const DEFINERS: &[&str] = &[
    "app_create_tenant",
    "app_fence_grant",
    "app_idempotency_cleanup",
    "app_member_copy",
    "app_member_fence",
    "app_member_grant",
    "app_quota_room",
    "app_tenant_away",
    "app_tenant_fence_grant",
];

/// The runtime role's login to `db`, as user `who`, in an open transaction.
async fn runtime_as(db: &TestDb, who: UserId) -> Client {
    let c = testkit::pg::connect(&db.runtime_url()).await;
    c.batch_execute(&format!("BEGIN; SELECT set_config('app.user_id', '{}', true)", who.0)).await.unwrap();
    c
}

/// What the transaction can see afterwards with the scope it was left: todos and memberships.
async fn visible(c: &Client) -> (i64, i64, String) {
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM todos), (SELECT count(*) FROM memberships WHERE user_id <> app_user_id()), \
                    coalesce(current_setting('app.tenant_ids', true), '')",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

async fn roles(db: &TestDb, t: TenantId) -> Vec<(Uuid, String)> {
    let rows = db
        .admin()
        .await
        .query("SELECT user_id, role FROM memberships WHERE tenant_id = $1 ORDER BY user_id", &[&t.0])
        .await
        .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

#[tokio::test]
async fn the_runtime_role_executes_no_other_owner_functions_than_those_listed() {
    let db = testkit::pg::db_for(store::Engine::Postgres).await;
    let admin = db.admin().await;
    let names: Vec<String> = admin
        .query(
            "SELECT p.proname::text FROM pg_proc p WHERE p.prosecdef AND p.pronamespace = 'public'::regnamespace \
               AND has_function_privilege('app_runtime', p.oid, 'EXECUTE') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, DEFINERS, "a new SECURITY DEFINER function granted to app_runtime needs its hostile test here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_calls_of_the_owner_functions_change_and_reveal_nothing() {
    let silo = Silo::new().await;
    let a = silo.instance();
    let (alice, bob, eve) = (user(&a, "alice").await, user(&a, "bob").await, user(&a, "eve").await);
    // A pooled tenant and a dedicated one, both alice's, with bob a member of the dedicated one.
    let pooled = tenant(&a, alice, "pooled").await;
    todo(&a, alice, pooled, "pooled secret").await.unwrap();
    let placed = tenant(&a, alice, "placed").await;
    silo.control
        .admin()
        .await
        .execute("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'member')", &[&placed.0, &bob.0])
        .await
        .unwrap();
    todo(&a, alice, placed, "placed secret").await.unwrap();
    silo.move_to(placed, Direction::ToDedicated, &Options::default()).await.unwrap();
    todo(&a, bob, placed, "bob's").await.unwrap();
    let (pooled_before, placed_before) = (roles(&silo.control, pooled).await, roles(&silo.dedicated, placed).await);
    let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let forged = vec![0u8; 32];

    // In the control database, eve, a stranger to both tenants.
    let c = runtime_as(&silo.control, eve).await;
    for t in [pooled, placed] {
        let copied: String = c
            .query_one("SELECT app_member_copy($1, 'admin', 0, $2, $3)", &[&t.0, &now_ms(), &forged])
            .await
            .unwrap()
            .get(0);
        assert_eq!(copied, "invalid", "no copy in the control database, whatever the grant");
        for (what, sql) in [
            ("member grant", "SELECT count(*) FROM app_member_grant($1, 0)"),
            ("fence grant", "SELECT count(*) FROM app_fence_grant($1, $2)"),
            ("tenant fence grant", "SELECT count(*) FROM app_tenant_fence_grant($1, true)"),
        ] {
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                if sql.contains("$2") { vec![&t.0, &alice.0] } else { vec![&t.0] };
            let n: i64 = c.query_one(sql, &params).await.unwrap().get(0);
            assert_eq!(n, 0, "{what}: nothing for a stranger");
        }
    }
    // app_quota_room counts only for a tenant in the caller's scope (or whose invitation code
    // the caller holds) and for the caller themself: a stranger learns no count of alice's.
    let (names, caps) = (vec!["free".to_string()], vec![1_000_i64]);
    for quota in ["todos", "members", "pending_invitations"] {
        let n = c
            .query("SELECT * FROM app_quota_room($1, $2, $3, $4)", &[&quota, &pooled.0, &names, &caps])
            .await
            .unwrap()
            .len();
        assert_eq!(n, 0, "{quota} of a stranger's tenant: no row");
    }
    let rows = c
        .query("SELECT * FROM app_quota_room('tenants_per_user', $1, $2, $3)", &[&alice.0, &names, &caps])
        .await
        .unwrap();
    assert!(rows.is_empty(), "another user's tenants: no row");
    assert_eq!(visible(&c).await, (0, 0, String::new()), "nothing in scope, nothing visible");
    c.batch_execute("COMMIT").await.unwrap();
    for (sql, what) in [
        ("SELECT app_member_fence($1, $2, 0, 0, $3, $4)", "fence alice out"),
        ("SELECT app_member_fence($1, $2, 300, 0, $3, $4)", "block alice"),
    ] {
        let c = runtime_as(&silo.control, eve).await;
        let err = c.query_one(sql, &[&pooled.0, &alice.0, &now_ms(), &forged]).await.expect_err(what);
        assert_eq!(err.code().map(|c| c.code()), Some("TM004"), "{what}: {err}");
    }
    let c = runtime_as(&silo.control, eve).await;
    let err = c.query_one("SELECT app_tenant_away($1, true, $2, $3)", &[&pooled.0, &now_ms(), &forged]).await;
    assert!(err.is_err(), "no tenant fence without a grant");
    // app_create_tenant makes the caller admin of a new tenant (what POST /api/tenants does),
    // refuses a taken id, and gives the caller's scope back.
    let c = runtime_as(&silo.control, eve).await;
    let err = c.query_one("SELECT * FROM app_create_tenant($1, 'mine now')", &[&pooled.0]).await;
    assert!(err.is_err(), "a taken id");
    let c = runtime_as(&silo.control, eve).await;
    let own = Uuid::new_v4();
    c.query_one("SELECT * FROM app_create_tenant($1, 'eve''s')", &[&own]).await.unwrap();
    assert_eq!(visible(&c).await, (0, 0, String::new()), "the scope is given back");
    c.batch_execute("COMMIT").await.unwrap();
    // app_idempotency_cleanup deletes expired records only.
    silo.control
        .admin()
        .await
        .execute(
            "INSERT INTO idempotency_keys (user_id, tenant_id, key, fingerprint, expires_at, claim) \
             VALUES ($1, $2, repeat('l', 64), sha256('x'), now() + interval '1 hour', gen_random_uuid())",
            &[&alice.0, &pooled.0],
        )
        .await
        .unwrap();
    let c = runtime_as(&silo.control, eve).await;
    c.query_one("SELECT app_idempotency_cleanup(1000)", &[]).await.unwrap();
    c.batch_execute("COMMIT").await.unwrap();
    let live: i64 = silo
        .control
        .admin()
        .await
        .query_one("SELECT count(*) FROM idempotency_keys WHERE key = repeat('l', 64)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 1, "a live record stays");

    // In the dedicated database, bob (a member) and eve (a stranger) with forged, borrowed and
    // altered grants.
    let bob_grant = runtime_as(&silo.control, bob)
        .await
        .query_one("SELECT grant_role, issued, mac FROM app_member_grant($1, 0)", &[&placed.0])
        .await
        .unwrap();
    let (role, issued, mac): (String, i64, Vec<u8>) = (bob_grant.get(0), bob_grant.get(1), bob_grant.get(2));
    assert_eq!(role, "member");
    // A grant signed with the right key, but issued ten minutes ago.
    let old = issued - 10 * 60 * 1000;
    let old_mac: Vec<u8> = silo
        .dedicated
        .admin()
        .await
        .query_one(
            "SELECT app_hmac(key, app_grant_message('copy', $1, $2, 'member', 0, $3)) FROM copy_key",
            &[&placed.0, &bob.0, &old],
        )
        .await
        .unwrap()
        .get(0);
    let d = runtime_as(&silo.dedicated, bob).await;
    for (r, i, m, why) in [
        ("admin", issued, mac.clone(), "a grant for member, promoted to admin"),
        ("member", issued + 1, mac.clone(), "another issue time"),
        ("member", issued, forged.clone(), "a forged signature"),
        ("member", old, old_mac, "a grant too old"),
    ] {
        let copied: String =
            d.query_one("SELECT app_member_copy($1, $2, 0, $3, $4)", &[&placed.0, &r, &i, &m]).await.unwrap().get(0);
        assert_eq!(copied, "invalid", "{why}");
    }
    assert_eq!(visible(&d).await, (0, 0, String::new()), "nothing in scope, nothing visible");
    d.batch_execute("COMMIT").await.unwrap();
    // Bob's grant in eve's hands.
    let d = runtime_as(&silo.dedicated, eve).await;
    let copied: String = d
        .query_one("SELECT app_member_copy($1, $2, 0, $3, $4)", &[&placed.0, &role, &issued, &mac])
        .await
        .unwrap()
        .get(0);
    assert_eq!(copied, "invalid", "a grant is for the user it was signed for");
    let at = now_ms();
    let err = d.query_one("SELECT app_member_fence($1, $2, 0, 0, $3, $4)", &[&placed.0, &alice.0, &at, &forged]).await;
    assert!(err.is_err(), "no fence without a grant");
    // Real grants, used for what they were not signed for: eve's own fence grant (anyone gets
    // one for themself) against alice's copy; and in the control database, where no key is.
    let eve_grants = runtime_as(&silo.control, eve)
        .await
        .query("SELECT block_secs, token, issued, mac FROM app_fence_grant($1, $2)", &[&placed.0, &eve.0])
        .await
        .unwrap();
    assert_eq!(eve_grants.len(), 2, "a grant for oneself");
    for (db, target, why) in
        [(&silo.dedicated, alice, "someone else's copy"), (&silo.control, eve, "the control database")]
    {
        for g in &eve_grants {
            let err = runtime_as(db, eve)
                .await
                .query_one(
                    "SELECT app_member_fence($1, $2, $3, $4, $5, $6)",
                    &[
                        &placed.0,
                        &target.0,
                        &g.get::<_, i32>(0),
                        &g.get::<_, i64>(1),
                        &g.get::<_, i64>(2),
                        &g.get::<_, Vec<u8>>(3),
                    ],
                )
                .await
                .expect_err(why);
            assert_eq!(err.code().map(|c| c.code()), Some("TM004"), "{why}: {err}");
        }
    }
    // A member may fence only their own copy: bob gets no grant for alice's.
    let n: i64 = runtime_as(&silo.control, bob)
        .await
        .query_one("SELECT count(*) FROM app_fence_grant($1, $2)", &[&placed.0, &alice.0])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "a member cannot fence someone else");

    assert_eq!(roles(&silo.control, pooled).await, pooled_before, "no membership changed in the control database");
    assert_eq!(roles(&silo.dedicated, placed).await, placed_before, "no copy changed in the dedicated database");
    // And the honest path still works: bob's own grant makes his copy.
    let d = runtime_as(&silo.dedicated, bob).await;
    let generation = silo.generation(placed, bob).await;
    let g = runtime_as(&silo.control, bob)
        .await
        .query_one("SELECT grant_role, issued, mac FROM app_member_grant($1, $2)", &[&placed.0, &generation])
        .await
        .unwrap();
    let copied: String = d
        .query_one(
            "SELECT app_member_copy($1, $2, $3, $4, $5)",
            &[&placed.0, &g.get::<_, String>(0), &generation, &g.get::<_, i64>(1), &g.get::<_, Vec<u8>>(2)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(copied, "made");
    assert_eq!(visible(&d).await.2, "", "and leaves no scope behind");
}

#[tokio::test]
async fn the_hmac_is_rfc_4231_s() {
    let db = testkit::pg::db_for(store::Engine::Postgres).await;
    // RFC 4231, test case 2.
    let mac: Vec<u8> = db
        .admin()
        .await
        .query_one(
            "SELECT app_hmac(convert_to('Jefe', 'UTF8'), convert_to('what do ya want for nothing?', 'UTF8'))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
