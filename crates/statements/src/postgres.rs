//! Every SQL statement the API runs, prepared once per physical connection.
//!
//! Role checks are folded into the statements: a statement on a tenant returns the caller's role
//! in it (`me_role`, no row when the caller is not a member) next to its result, so that one
//! statement decides 404, 403 or success without a second round trip. The tenant scope that RLS
//! keys on is set by the `Scope*` statements, which run first in the same transaction.

use crate::rate_limits;

macro_rules! statements {
    ($($(#[$doc:meta])* $name:ident => $sql:expr,)*) => {
        /// A prepared statement's name; `Q::sql` is its text.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Q { $($(#[$doc])* $name,)* }

        impl Q {
            pub const ALL: &'static [Q] = &[$(Q::$name,)*];

            pub const fn sql(self) -> &'static str {
                match self { $(Q::$name => $sql,)* }
            }
        }
    };
}

/// The caller's role in tenant `$1`, as a CTE named `me`.
macro_rules! me {
    () => {
        "me AS (SELECT role FROM memberships WHERE tenant_id = $1::uuid AND user_id = app_user_id())"
    };
}

statements! {
    /// Sets the caller; no tenant is in scope until a `Scope*` statement resolves some.
    ScopeSet => "SELECT set_config('app.user_id', $1::uuid::text, true), set_config('app.tenant_ids', '', true)",
    /// The caller's identity, while registering: it lets the transaction see the caller's row
    /// by (issuer, subject) before it knows the id.
    ScopeIdentity => "SELECT set_config('app.issuer', $1::text, true), set_config('app.subject', $2::text, true)",
    /// The SHA-256 (hex) of an invitation code being accepted: its holder sees that invitation.
    ScopeInvitation => "SELECT set_config('app.invitation', $1::text, true)",
    /// Scopes to tenant `$2` if and only if the caller is a member of it.
    ScopeMember => "SELECT set_config('app.tenant_ids', coalesce((SELECT array_agg(tenant_id)::text \
                        FROM memberships WHERE user_id = $1::uuid AND tenant_id = $2::uuid), '{}'), true)",
    /// Scopes to every tenant the caller is a member of.
    ScopeAll => "SELECT set_config('app.tenant_ids', coalesce((SELECT array_agg(tenant_id)::text \
                        FROM memberships WHERE user_id = $1::uuid), '{}'), true)",

    /// The caller's id by (issuer `$1`, subject `$2`): found, claimed from a row registered
    /// before issuers were recorded (only when `$5`: the caller's issuer is the one the deployment
    /// trusted then), or created with the fresh random id in `app.user_id` and
    /// the profile `$3`, `$4`. Reads only when the user exists. No row: a concurrent
    /// registration won the race (run it again). Columns: id, created.
    UserRegister => "WITH found AS (SELECT id FROM users WHERE issuer = $1::text AND subject = $2::text), \
                     claimed AS (UPDATE users SET issuer = $1::text, updated_at = now() \
                                 WHERE $5::bool AND issuer IS NULL AND subject = $2::text \
                                   AND NOT EXISTS (SELECT 1 FROM found) \
                                 RETURNING id), \
                     ins AS (INSERT INTO users (id, issuer, subject, name, email) \
                             SELECT app_user_id(), $1::text, $2::text, $3::text, $4::text \
                             WHERE NOT EXISTS (SELECT 1 FROM found) AND NOT EXISTS (SELECT 1 FROM claimed) \
                             ON CONFLICT DO NOTHING RETURNING id) \
                     SELECT id, false FROM found UNION ALL SELECT id, false FROM claimed UNION ALL SELECT id, true FROM ins",
    UserMe => "SELECT id, subject, name, email, created_at FROM users WHERE id = app_user_id()",
    UserMemberships => "SELECT m.tenant_id, t.name, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id \
                        WHERE m.user_id = app_user_id() ORDER BY t.created_at, t.id LIMIT 200",
    /// POST /api/users for a registered caller: replaces their profile.
    UserProfileSet => "UPDATE users SET name = $1::text, email = $2::text, updated_at = now() WHERE id = app_user_id() \
                       RETURNING id, subject, name, email, created_at",
    /// Self or a co-member (RLS on users, in the all-memberships scope, decides visibility).
    UserGet => "SELECT id, CASE WHEN id = app_user_id() THEN subject END, name, email, created_at \
                FROM users WHERE id = $1::uuid",
    UserList => "SELECT u.id, CASE WHEN u.id = app_user_id() THEN u.subject END, u.name, u.email, u.created_at \
                 FROM users u \
                 WHERE u.id IN (SELECT m.user_id FROM memberships m WHERE m.tenant_id = ANY (app_tenant_ids()) \
                                UNION ALL SELECT app_user_id()) \
                   AND (u.created_at, u.id) > ($1::timestamptz, $2::uuid) \
                 ORDER BY u.created_at, u.id LIMIT $3::int8",
    /// PUT /api/users/{id}: only the user themself. First column: is the target visible at all.
    UserUpdate => "WITH target AS (SELECT id FROM users WHERE id = $1::uuid), \
                   upd AS (UPDATE users SET name = $2::text, email = $3::text, updated_at = now() \
                           WHERE id = $1::uuid AND id = app_user_id() \
                           RETURNING id, subject, name, email, created_at) \
                   SELECT EXISTS (SELECT 1 FROM target), upd.id, upd.subject, upd.name, upd.email, upd.created_at \
                   FROM (SELECT 1) one LEFT JOIN upd ON true",
    /// Locks the tenants the caller administers, so that two admins leaving at once cannot both
    /// pass the last-admin check.
    UserLockAdminTenants => "SELECT t.id FROM tenants t WHERE t.id IN \
                             (SELECT tenant_id FROM memberships WHERE user_id = app_user_id() AND role = 'admin') \
                             ORDER BY t.id FOR UPDATE",
    /// DELETE /api/users/{id}: only the user themself, and not while they are the last admin of
    /// a tenant (it would be left with nobody to manage it).
    UserDelete => "WITH target AS (SELECT id FROM users WHERE id = $1::uuid), \
                   sole AS (SELECT m.tenant_id FROM memberships m \
                            WHERE m.user_id = $1::uuid AND m.role = 'admin' \
                              AND NOT EXISTS (SELECT 1 FROM memberships o WHERE o.tenant_id = m.tenant_id \
                                              AND o.role = 'admin' AND o.user_id <> m.user_id)), \
                   del AS (DELETE FROM users WHERE id = $1::uuid AND id = app_user_id() \
                           AND NOT EXISTS (SELECT 1 FROM sole) RETURNING id) \
                   SELECT EXISTS (SELECT 1 FROM target), EXISTS (SELECT 1 FROM sole), EXISTS (SELECT 1 FROM del)",

    /// POST /api/tenants: the tenant and the caller as its admin, by the database function that
    /// alone may create tenants. A taken id fails on tenants_pkey (409).
    /// Within the caller's tenants quota (`$3` plan names, `$4` quotas; the default plan's
    /// applies). Columns: the tenant (NULL when the quota is full), the quota's plan, cap, use.
    TenantCreate => "SELECT id, name, role, created_at, plan, cap, used \
                     FROM app_create_tenant_in_quota($1::uuid, $2::text, $3::text[], $4::int8[])",
    TenantList => "SELECT t.id, t.name, m.role, t.created_at FROM tenants t \
                   JOIN memberships m ON m.tenant_id = t.id AND m.user_id = app_user_id() \
                   WHERE (t.created_at, t.id) > ($1::timestamptz, $2::uuid) \
                   ORDER BY t.created_at, t.id LIMIT $3::int8",
    /// GET /api/tenants/{id}: the tenant, its plan (`$2` plan names, the default first), and
    /// for admins its counts, each counted up to its quota (`$3` todos, `$4` members, `$5`
    /// pending invitations quotas of the plans); then the three quotas, and whether its todos
    /// live in a dedicated database (counted there: `TodoCount`).
    TenantGet => "SELECT t.id, t.name, m.role, t.created_at, ($2::text[])[p.i], \
                    CASE WHEN m.role = 'admin' THEN (SELECT count(*) FROM (SELECT 1 FROM todos x \
                      WHERE x.tenant_id = t.id LIMIT ($3::int8[])[p.i]) c) END, \
                    CASE WHEN m.role = 'admin' THEN (SELECT count(*) FROM (SELECT 1 FROM memberships x \
                      WHERE x.tenant_id = t.id LIMIT ($4::int8[])[p.i]) c) END, \
                    CASE WHEN m.role = 'admin' THEN (SELECT count(*) FROM (SELECT 1 FROM invitations x \
                      WHERE x.tenant_id = t.id AND x.expires_at > now() LIMIT ($5::int8[])[p.i]) c) END, \
                    ($3::int8[])[p.i], ($4::int8[])[p.i], ($5::int8[])[p.i], \
                    EXISTS (SELECT 1 FROM tenant_placements x WHERE x.tenant_id = t.id) \
                  FROM tenants t JOIN memberships m ON m.tenant_id = t.id AND m.user_id = app_user_id() \
                  CROSS JOIN LATERAL (SELECT coalesce(array_position($2::text[], t.plan), 1) AS i) p \
                  WHERE t.id = $1::uuid",
    /// A tenant's todos for its admins, counted up to `$2` (GET /api/tenants/{id} of a tenant
    /// whose todos live in a dedicated database). Columns: me_role, the count.
    TodoCount => concat!("WITH ", me!(), " \
                   SELECT me.role, (SELECT count(*) FROM (SELECT 1 FROM todos x WHERE x.tenant_id = $1::uuid \
                     AND me.role = 'admin' LIMIT $2::int8) c) FROM me"),
    TenantRename => concat!("WITH ", me!(), ", \
                     upd AS (UPDATE tenants SET name = $2::text WHERE id = $1::uuid \
                             AND EXISTS (SELECT 1 FROM me WHERE role = 'admin') RETURNING id, name, created_at) \
                     SELECT me.role, upd.id, upd.name, upd.created_at FROM me LEFT JOIN upd ON true"),
    TenantDelete => concat!("WITH ", me!(), ", \
                     del AS (DELETE FROM tenants WHERE id = $1::uuid \
                             AND EXISTS (SELECT 1 FROM me WHERE role = 'admin') RETURNING id) \
                     SELECT me.role, EXISTS (SELECT 1 FROM del) FROM me"),

    /// Serialises membership changes of tenant `$1` (the last-admin rule reads, then writes).
    TenantLock => "SELECT id FROM tenants WHERE id = $1::uuid FOR UPDATE",
    MemberList => concat!("WITH ", me!(), " \
                   SELECT me.role, x.tenant_id, x.user_id, x.name, x.email, x.role, x.created_at FROM me LEFT JOIN LATERAL ( \
                     SELECT m.tenant_id, m.user_id, u.name, u.email, m.role, m.created_at FROM memberships m \
                     JOIN users u ON u.id = m.user_id \
                     WHERE m.tenant_id = $1::uuid AND (m.created_at, m.user_id) > ($2::timestamptz, $3::uuid) \
                     ORDER BY m.created_at, m.user_id LIMIT $4::int8) x ON true"),
    /// PUT /api/tenants/{id}/members/{user_id}: admins change a member's role (members join by
    /// invitation only); the last admin cannot be demoted. Columns: me_role, target is a member,
    /// allowed.
    MemberPut => concat!("WITH ", me!(), ", \
                  target AS (SELECT role FROM memberships WHERE tenant_id = $1::uuid AND user_id = $2::uuid), \
                  others AS (SELECT count(*) AS n FROM memberships \
                             WHERE tenant_id = $1::uuid AND role = 'admin' AND user_id <> $2::uuid), \
                  ok AS (SELECT 1 FROM me WHERE me.role = 'admin' AND EXISTS (SELECT 1 FROM target) \
                         AND ($3::text = 'admin' OR (SELECT n FROM others) > 0)), \
                  up AS (UPDATE memberships SET role = $3::text WHERE tenant_id = $1::uuid AND user_id = $2::uuid \
                         AND EXISTS (SELECT 1 FROM ok) RETURNING 1) \
                  SELECT me.role, EXISTS (SELECT 1 FROM target), EXISTS (SELECT 1 FROM ok) FROM me"),
    /// One member with their profile (run after MemberPut in the same transaction).
    MemberGet => "SELECT m.tenant_id, m.user_id, u.name, u.email, m.role, m.created_at FROM memberships m \
                  JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1::uuid AND m.user_id = $2::uuid",
    /// DELETE /api/tenants/{id}/members/{user_id}: admins remove anyone, members remove
    /// themselves (leave); never the last admin. Columns: me_role, target_role, others, deleted.
    MemberDelete => concat!("WITH ", me!(), ", \
                     target AS (SELECT role FROM memberships WHERE tenant_id = $1::uuid AND user_id = $2::uuid), \
                     others AS (SELECT count(*) AS n FROM memberships \
                                WHERE tenant_id = $1::uuid AND role = 'admin' AND user_id <> $2::uuid), \
                     del AS (DELETE FROM memberships WHERE tenant_id = $1::uuid AND user_id = $2::uuid \
                             AND EXISTS (SELECT 1 FROM me WHERE me.role = 'admin' OR $2::uuid = app_user_id()) \
                             AND ((SELECT role FROM target) <> 'admin' OR (SELECT n FROM others) > 0) \
                             RETURNING 1) \
                     SELECT me.role, (SELECT role FROM target), (SELECT n FROM others), EXISTS (SELECT 1 FROM del) FROM me"),

    TodoList => concat!("WITH ", me!(), " \
                 SELECT me.role, x.tenant_id, x.id, x.title, x.complete, x.created_at, x.updated_at \
                 FROM me LEFT JOIN LATERAL ( \
                   SELECT tenant_id, id, title, complete, created_at, updated_at FROM todos \
                   WHERE tenant_id = $1::uuid AND ($2::bool IS NULL OR complete = $2::bool) \
                     AND (created_at, id) > ($3::timestamptz, $4::uuid) \
                   ORDER BY created_at, id LIMIT $5::int8) x ON true"),
    /// POST /api/tenants/{id}/todos (editors), within the tenant's todos quota: `$5` the plan
    /// names (the default first), `$6` their todos quotas (see `app_quota_room`, 0007).
    /// Columns: me_role, the todo, then the quota's plan, cap and use.
    TodoCreate => concat!("WITH ", me!(), ", \
                   room AS (SELECT plan, cap, used FROM app_quota_room('todos', $1::uuid, $5::text[], $6::int8[])), \
                   ins AS (INSERT INTO todos (tenant_id, id, title, complete) \
                           SELECT $1::uuid, $2::uuid, $3::text, $4::bool FROM me, room \
                           WHERE me.role IN ('admin', 'member') AND room.used < room.cap \
                           RETURNING tenant_id, id, title, complete, created_at, updated_at) \
                   SELECT me.role, ins.tenant_id, ins.id, ins.title, ins.complete, ins.created_at, ins.updated_at, \
                          room.plan, room.cap, room.used \
                   FROM me LEFT JOIN ins ON true LEFT JOIN room ON true"),
    TodoGet => concat!("WITH ", me!(), " \
                SELECT me.role, t.tenant_id, t.id, t.title, t.complete, t.created_at, t.updated_at \
                FROM me LEFT JOIN todos t ON t.tenant_id = $1::uuid AND t.id = $2::uuid"),
    TodoUpdate => concat!("WITH ", me!(), ", \
                   upd AS (UPDATE todos SET title = coalesce($3::text, title), complete = coalesce($4::bool, complete), \
                                            updated_at = now() \
                           WHERE tenant_id = $1::uuid AND id = $2::uuid AND EXISTS (SELECT 1 FROM me WHERE role IN ('admin', 'member')) \
                           RETURNING tenant_id, id, title, complete, created_at, updated_at) \
                   SELECT me.role, upd.tenant_id, upd.id, upd.title, upd.complete, upd.created_at, upd.updated_at \
                   FROM me LEFT JOIN upd ON true"),
    TodoDelete => concat!("WITH ", me!(), ", \
                   del AS (DELETE FROM todos WHERE tenant_id = $1::uuid AND id = $2::uuid \
                           AND EXISTS (SELECT 1 FROM me WHERE role IN ('admin', 'member')) RETURNING id) \
                   SELECT me.role, EXISTS (SELECT 1 FROM del) FROM me"),
    /// GET /api/todos: every tenant the caller belongs to (the all-memberships scope). Todo ids
    /// are unique per tenant only, so the page key includes the tenant.
    TodoListAll => "SELECT tenant_id, id, title, complete, created_at, updated_at FROM todos \
                    WHERE tenant_id = ANY (app_tenant_ids()) AND ($1::bool IS NULL OR complete = $1::bool) \
                      AND (created_at, tenant_id, id) > ($2::timestamptz, $3::uuid, $4::uuid) \
                    ORDER BY created_at, tenant_id, id LIMIT $5::int8",

    /// POST /api/tenants/{id}/invitations (admins): code hash `$2`, role `$3`, email `$4`,
    /// life `$5` seconds, within the pending invitations quota (`$6` plan names, `$7` quotas).
    /// Columns: me_role, the invitation, then the quota's plan, cap and use.
    InvitationCreate => concat!("WITH ", me!(), ", \
                         room AS (SELECT plan, cap, used \
                                  FROM app_quota_room('pending_invitations', $1::uuid, $6::text[], $7::int8[])), \
                         ins AS (INSERT INTO invitations (tenant_id, code_hash, role, email, created_by, expires_at) \
                                 SELECT $1::uuid, $2::bytea, $3::text, $4::text, app_user_id(), now() + $5::int8 * interval '1 second' \
                                 FROM me, room WHERE me.role = 'admin' AND room.used < room.cap \
                                 RETURNING tenant_id, id, role, email, created_at, expires_at, created_by) \
                         SELECT me.role, ins.tenant_id, ins.id, ins.role, ins.email, ins.created_at, ins.expires_at, \
                                ins.created_by, room.plan, room.cap, room.used \
                         FROM me LEFT JOIN ins ON true LEFT JOIN room ON true"),
    /// GET /api/tenants/{id}/invitations (admins): pending ones, never their codes.
    InvitationList => concat!("WITH ", me!(), " \
                       SELECT me.role, x.tenant_id, x.id, x.role, x.email, x.created_at, x.expires_at, x.created_by \
                       FROM me LEFT JOIN LATERAL ( \
                         SELECT tenant_id, id, role, email, created_at, expires_at, created_by FROM invitations \
                         WHERE tenant_id = $1::uuid AND expires_at > now() AND me.role = 'admin' \
                           AND (created_at, id) > ($2::timestamptz, $3::uuid) \
                         ORDER BY created_at, id LIMIT $4::int8) x ON true"),
    /// DELETE /api/tenants/{id}/invitations/{invitation_id} (admins): revokes.
    InvitationRevoke => concat!("WITH ", me!(), ", \
                         del AS (DELETE FROM invitations WHERE tenant_id = $1::uuid AND id = $2::uuid \
                                 AND EXISTS (SELECT 1 FROM me WHERE role = 'admin') RETURNING id) \
                         SELECT me.role, EXISTS (SELECT 1 FROM del) FROM me"),
    /// POST /api/invitations/accept: consumes the invitation whose code hash `$1` is in
    /// `app.invitation` if it is unexpired, the caller may take it (email `$2`, verified, when
    /// it names one) and is not a member yet, and enrols the caller; then puts that tenant in
    /// scope; within the tenant's members quota (`$3` plan names, `$4` quotas). Columns: the
    /// invitation is valid for the caller, the caller is a member already, the new membership's
    /// tenant and role, the scope set, then the quota's plan, cap and use.
    InvitationAccept => "WITH inv AS (SELECT tenant_id, role, email FROM invitations \
                                      WHERE code_hash = $1::bytea AND expires_at > now() AND created_by IS NOT NULL \
                                        AND (email IS NULL OR email = $2::text)), \
                         room AS (SELECT r.plan, r.cap, r.used \
                                  FROM inv, LATERAL app_quota_room('members', inv.tenant_id, $3::text[], $4::int8[]) r), \
                         ok AS (SELECT 1 FROM inv, room WHERE app_role_in(inv.tenant_id) IS NULL AND room.used < room.cap), \
                         del AS (DELETE FROM invitations WHERE code_hash = $1::bytea AND EXISTS (SELECT 1 FROM ok) \
                                 RETURNING tenant_id, role), \
                         ins AS (INSERT INTO memberships (tenant_id, user_id, role) \
                                 SELECT tenant_id, app_user_id(), role FROM del RETURNING tenant_id, role) \
                         SELECT EXISTS (SELECT 1 FROM inv), EXISTS (SELECT 1 FROM inv WHERE app_role_in(inv.tenant_id) IS NOT NULL), \
                                ins.tenant_id, ins.role, \
                                set_config('app.tenant_ids', CASE WHEN ins.tenant_id IS NULL THEN '' ELSE ARRAY[ins.tenant_id]::text END, true), \
                                room.plan, room.cap, room.used \
                         FROM (SELECT 1) one LEFT JOIN ins ON true LEFT JOIN room ON true",
    /// The tenant just joined (in scope after InvitationAccept).
    InvitationTenant => "SELECT id, name FROM tenants WHERE id = ANY (app_tenant_ids())",

    // Rate limits (issue 24): the statements are in `rate_limits.rs`.
    RateRowTenant => rate_limits::RATE_ROW_TENANT,
    RateRowCaller => rate_limits::RATE_ROW_CALLER,
    RateLeaseTenant => rate_limits::RATE_LEASE_TENANT,
    RateLeaseCaller => rate_limits::RATE_LEASE_CALLER,

    /// Sets the caller `$3` (in place of `ScopeSet`) and claims an `Idempotency-Key` (tenant
    /// `$1`, key `$2`). The claim writes nothing: it waits until no other transaction holds the
    /// key (a transaction-level advisory lock, in the two-key space that no other lock of ours
    /// uses). The request's first recorded statement then inserts the record together with its
    /// rows (`idempotency::recording_sql`); a taken key fails there, on idempotency_keys_pkey.
    IdemClaim => "SELECT set_config('app.user_id', $3::uuid::text, true), set_config('app.tenant_ids', '', true), \
                         pg_advisory_xact_lock(hashtext($3::uuid::text || $1::uuid::text), hashtext($2::text))",
    /// The record of a key, live or expired: fingerprint, results, live, claim.
    IdemFetch => "SELECT fingerprint, results, expires_at >= now(), claim FROM idempotency_keys \
                  WHERE user_id = app_user_id() AND tenant_id = $1::uuid AND key = $2::text",
    /// Drops the record of a request that failed with a 4xx (the client may fix it and retry):
    /// only the record that this request claimed (`$3`), never another request's.
    IdemForget => "DELETE FROM idempotency_keys WHERE user_id = app_user_id() AND tenant_id = $1::uuid AND key = $2::text \
                   AND claim = $3::uuid",
    /// Deletes up to `$1` expired records (the scheduled cleanup).
    IdemCleanup => "SELECT app_idempotency_cleanup($1::int4)",
    /// Removes what is left of a deleted tenant on Aurora DSQL (see `crate::dsql`); on
    /// PostgreSQL foreign keys cascade, and there is nothing left to remove.
    PurgeTenant => "SELECT 0::int8 WHERE $1::uuid IS NOT NULL AND $2::int8 IS NOT NULL",
    /// Deleted tenants whose purge was cut short (DSQL only; none on PostgreSQL).
    OrphanTenants => "SELECT NULL::uuid WHERE false",
    /// A value computed outside the database that the answer needs, so that a replay has it too.
    Echo => "SELECT $1::text",

    // Placements (`crate::placement`): none of these is ever recorded.
    /// The last statement of every transaction on tenant `$1`'s todos (`$2`: it writes; `$3`:
    /// in a dedicated database): fails with TM002 where the tenant is not served from, TM001 on
    /// a write during a move, TM003 in a dedicated database without the caller's membership copy.
    FenceCheck => "SELECT app_fence_check($1::uuid, $2::bool, $3::bool)",
    /// Fails with TM002 unless tenant `$1` lives in database `$2` (NULL: pooled), in the control
    /// database: the last statement of a membership change.
    PlacementIs => "SELECT app_placement_is($1::uuid, $2::uuid)",
    /// Removes what a dedicated database holds of tenant `$1` (in scope through ScopeTenants)
    /// after the control database deleted it.
    TenantDrop => "DELETE FROM tenants WHERE id = $1::uuid",
    /// Where tenant `$1` lives, when not here (control database).
    PlacementGet => "SELECT d.id, d.host, host(d.hostaddr), d.port::int8, d.dbname, d.db_user, d.auth, d.tls, p.epoch \
                     FROM tenant_placements p JOIN databases d ON d.id = p.database_id WHERE p.tenant_id = $1::uuid",
    /// Every dedicated database (control database): the scheduled cleanup visits each.
    DatabasesAll => "SELECT d.id, d.host, host(d.hostaddr), d.port::int8, d.dbname, d.db_user, d.auth, d.tls FROM databases d ORDER BY d.id",
    /// The caller's tenants that live in dedicated databases, with where (control database).
    PlacementsMine => "SELECT p.tenant_id, d.id, d.host, host(d.hostaddr), d.port::int8, d.dbname, d.db_user, d.auth, d.tls, p.epoch \
                       FROM memberships m JOIN tenant_placements p ON p.tenant_id = m.tenant_id \
                       JOIN databases d ON d.id = p.database_id WHERE m.user_id = app_user_id()",
    /// Scopes to the caller's tenants that live here (control database): GET /api/todos.
    ScopeAllHere => "SELECT set_config('app.tenant_ids', coalesce((SELECT array_agg(m.tenant_id)::text \
                        FROM memberships m WHERE m.user_id = $1::uuid AND NOT EXISTS \
                        (SELECT 1 FROM tenant_placements p WHERE p.tenant_id = m.tenant_id)), '{}'), true)",
    /// Scopes to tenants `$1`, whose membership the control database has just confirmed (a
    /// dedicated database's part of GET /api/todos).
    ScopeTenants => "SELECT set_config('app.tenant_ids', $1::uuid[]::text, true)",
    /// The caller's role in tenant `$1`, signed by the control database for a copy at
    /// generation `$2` (app_member_grant): what a dedicated database's copy is made from.
    MemberGrant => "SELECT grant_role, issued, mac FROM app_member_grant($1::uuid, $2::int8)",
    /// Copies the caller's membership of tenant `$1` with role `$2` on the grant (`$3`, `$4`,
    /// `$5`: generation, issue time, signature): made, blocked or refused (dedicated database).
    MemberCopy => "SELECT app_member_copy($1::uuid, $2::text, $3::int8, $4::int8, $5::bytea)",
    /// Drops the copy of user `$2`'s membership of tenant `$1`, gives it a new generation and
    /// blocks new copies for `$3` seconds as change `$4` (0: lifts that change's block), on the
    /// grant `$5`, `$6` (dedicated database).
    MemberFence => "SELECT app_member_fence($1::uuid, $2::uuid, $3::int8::int4, $4::int8, $5::int8, $6::bytea)",
    /// The control database's grants to fence user `$2`'s membership of tenant `$1`: one that
    /// blocks new copies (before the change), one that lifts the block (after it). No rows when
    /// the caller may not change that membership, or the tenant has no dedicated database.
    FenceGrants => "SELECT block_secs::int8, token, issued, mac FROM app_fence_grant($1::uuid, $2::uuid) \
                    ORDER BY block_secs DESC",
    /// The control database's grants to fence tenant `$1` away in its dedicated database, and to
    /// take that fence back (admins only; no rows otherwise).
    TenantFenceGrants => "SELECT a.away, g.issued, g.mac FROM (VALUES (true), (false)) a (away) \
                          CROSS JOIN LATERAL app_tenant_fence_grant($1::uuid, a.away) g ORDER BY a.away DESC",
    /// Fences tenant `$1` away (`$2`) or takes the fence back, on the grant `$3`, `$4`
    /// (dedicated database).
    TenantAway => "SELECT app_tenant_away($1::uuid, $2::bool, $3::int8, $4::bytea)",
}

impl Q {
    /// Added with placements, after records existed: outside the record version, never recorded.
    pub const fn is_placement(self) -> bool {
        matches!(
            self,
            Q::FenceCheck
                | Q::PlacementIs
                | Q::TenantDrop
                | Q::PlacementGet
                | Q::DatabasesAll
                | Q::PlacementsMine
                | Q::ScopeAllHere
                | Q::ScopeTenants
                | Q::MemberGrant
                | Q::MemberCopy
                | Q::MemberFence
                | Q::FenceGrants
                | Q::TenantFenceGrants
                | Q::TenantAway
        )
    }
}
