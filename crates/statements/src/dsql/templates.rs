//! The text of every statement on DSQL (see the parent module for the rules they follow).

use crate::Q;

/// The caller's membership of tenant `$1`, if the tenant exists and is not deleted.
macro_rules! me {
    () => {
        "me AS (SELECT m.tenant_id, m.role FROM memberships m \
         JOIN tenants s ON s.id = m.tenant_id AND s.deleted_at IS NULL \
         WHERE m.user_id = $U AND m.tenant_id = $1::uuid)"
    };
}

/// All the caller's memberships of tenants that exist and are not deleted.
macro_rules! mine {
    () => {
        "mine AS (SELECT m.tenant_id, m.role FROM memberships m \
         JOIN tenants s ON s.id = m.tenant_id AND s.deleted_at IS NULL WHERE m.user_id = $U)"
    };
}

/// The users the caller may see: themself and the members of their tenants (a condition on
/// `u`, used with [`mine!`]).
macro_rules! visible_user {
    () => {
        "(u.id = $U OR u.id IN (SELECT c.user_id FROM memberships c WHERE c.tenant_id IN (SELECT tenant_id FROM mine)))"
    };
}

/// The template of `q` on DSQL: `$U` is the caller's id.
pub fn template(q: Q) -> &'static str {
    match q {
        // The scope is in each statement: these keep their parameters and do nothing.
        Q::ScopeSet => "SELECT $1::uuid",
        Q::ScopeIdentity => "SELECT $1::text, $2::text",
        Q::ScopeInvitation => "SELECT $1::text",
        Q::ScopeMember => "SELECT $1::uuid, $2::uuid",
        Q::ScopeAll => "SELECT $1::uuid",

        // No user registered before issuers were recorded exists on DSQL: nothing to claim.
        Q::UserRegister => {
            "WITH found AS (SELECT id FROM users WHERE issuer = $1::text AND subject = $2::text), \
             ins AS (INSERT INTO users (id, issuer, subject, name, email) \
                     SELECT $U, $1::text, $2::text, $3::text, $4::text WHERE NOT EXISTS (SELECT 1 FROM found) \
                       AND $5::bool IS NOT NULL \
                     ON CONFLICT DO NOTHING RETURNING id) \
             SELECT id, false FROM found UNION ALL SELECT id, true FROM ins"
        }
        Q::UserMe => "SELECT id, subject, name, email, created_at FROM users WHERE id = $U",
        Q::UserMemberships => {
            "SELECT m.tenant_id, t.name, m.role FROM memberships m \
             JOIN tenants t ON t.id = m.tenant_id AND t.deleted_at IS NULL WHERE m.user_id = $U ORDER BY t.created_at, t.id LIMIT 200"
        }
        Q::UserProfileSet => {
            "UPDATE users SET name = $1::text, email = $2::text, updated_at = now() WHERE id = $U \
             RETURNING id, subject, name, email, created_at"
        }
        Q::UserGet => concat!(
            "WITH ",
            mine!(),
            " SELECT u.id, CASE WHEN u.id = $U THEN u.subject END, u.name, u.email, u.created_at \
             FROM users u WHERE u.id = $1::uuid AND ",
            visible_user!()
        ),
        Q::UserList => concat!(
            "WITH ",
            mine!(),
            " SELECT u.id, CASE WHEN u.id = $U THEN u.subject END, u.name, u.email, u.created_at FROM users u \
             WHERE ",
            visible_user!(),
            " AND (u.created_at, u.id) > ($1::timestamptz, $2::uuid) ORDER BY u.created_at, u.id LIMIT $3::int8"
        ),
        Q::UserUpdate => concat!(
            "WITH ",
            mine!(),
            ", target AS (SELECT u.id FROM users u WHERE u.id = $1::uuid AND ",
            visible_user!(),
            "), upd AS (UPDATE users SET name = $2::text, email = $3::text, updated_at = now() \
                     WHERE id = $1::uuid AND id = $U RETURNING id, subject, name, email, created_at) \
             SELECT EXISTS (SELECT 1 FROM target), upd.id, upd.subject, upd.name, upd.email, upd.created_at \
             FROM (SELECT 1) one LEFT JOIN upd ON true"
        ),
        // Under optimistic concurrency a lock is a write: two transactions that write the same
        // row conflict at commit, and one runs again. So the last-admin rules "lock" a tenant by
        // writing its row unchanged.
        Q::UserLockAdminTenants => concat!(
            "WITH ",
            mine!(),
            " UPDATE tenants t SET name = t.name WHERE t.id IN (SELECT tenant_id FROM mine WHERE role = 'admin') \
             RETURNING t.id"
        ),
        // No foreign keys cascade on DSQL: the caller's memberships go with them, in the same
        // transaction (a user's memberships are far fewer than the 3,000 rows a DSQL
        // transaction may modify).
        Q::UserDelete => concat!(
            "WITH ",
            mine!(),
            ", target AS (SELECT u.id FROM users u WHERE u.id = $1::uuid AND ",
            visible_user!(),
            "), sole AS (SELECT m.tenant_id FROM memberships m \
                      JOIN tenants s ON s.id = m.tenant_id AND s.deleted_at IS NULL \
                      WHERE m.user_id = $U AND m.user_id = $1::uuid AND m.role = 'admin' \
                        AND NOT EXISTS (SELECT 1 FROM memberships o WHERE o.tenant_id = m.tenant_id \
                                        AND o.role = 'admin' AND o.user_id <> m.user_id)), \
             del AS (DELETE FROM users WHERE id = $1::uuid AND id = $U AND NOT EXISTS (SELECT 1 FROM sole) RETURNING id), \
             gone AS (DELETE FROM memberships x WHERE x.user_id = $U AND EXISTS (SELECT 1 FROM del) RETURNING 1) \
             SELECT EXISTS (SELECT 1 FROM target), EXISTS (SELECT 1 FROM sole), EXISTS (SELECT 1 FROM del)"
        ),

        // A new tenant and the caller as its admin. A taken id fails on tenants_pkey (409); no
        // row when the caller's user row is gone (no foreign key says so on DSQL).
        Q::TenantCreate => {
            "WITH caller AS (SELECT id FROM users WHERE id = $U FOR UPDATE), \
             t AS (INSERT INTO tenants (id, name) SELECT $1::uuid, $2::text \
                     WHERE EXISTS (SELECT 1 FROM caller) RETURNING id, name, created_at), \
             a AS (INSERT INTO memberships (tenant_id, user_id, role) SELECT t.id, $U, 'admin' FROM t RETURNING role) \
             SELECT t.id, t.name, a.role, t.created_at FROM t, a"
        }
        Q::TenantList => {
            "SELECT t.id, t.name, m.role, t.created_at FROM tenants t \
             JOIN memberships m ON m.tenant_id = t.id AND m.user_id = $U \
             WHERE t.deleted_at IS NULL AND (t.created_at, t.id) > ($1::timestamptz, $2::uuid) ORDER BY t.created_at, t.id LIMIT $3::int8"
        }
        Q::TenantGet => {
            "SELECT t.id, t.name, m.role, t.created_at FROM tenants t \
             JOIN memberships m ON m.tenant_id = t.id AND m.user_id = $U \
             WHERE t.id = $1::uuid AND t.deleted_at IS NULL"
        }
        Q::TenantRename => concat!(
            "WITH ",
            me!(),
            ", upd AS (UPDATE tenants SET name = $2::text WHERE id = $1::uuid \
                      AND id = (SELECT tenant_id FROM me WHERE role = 'admin') RETURNING id, name, created_at) \
             SELECT me.role, upd.id, upd.name, upd.created_at FROM me LEFT JOIN upd ON true"
        ),
        // Marking the tenant deleted hides everything of it at once (every scope joins tenants
        // that are not); its rows are removed afterwards in batches, its own row last
        // (Q::PurgeTenant), so that its id cannot be taken again while anything of it is left.
        Q::TenantDelete => concat!(
            "WITH ",
            me!(),
            ", del AS (UPDATE tenants SET deleted_at = now() WHERE id = $1::uuid \
                      AND id = (SELECT tenant_id FROM me WHERE role = 'admin') RETURNING id) \
             SELECT me.role, EXISTS (SELECT 1 FROM del) FROM me"
        ),
        Q::TenantLock => concat!(
            "WITH ",
            me!(),
            " UPDATE tenants SET name = name WHERE id = $1::uuid AND id = (SELECT tenant_id FROM me) RETURNING id"
        ),
        Q::MemberList => concat!(
            "WITH ",
            me!(),
            " SELECT me.role, x.tenant_id, x.user_id, x.name, x.email, x.role, x.created_at FROM me LEFT JOIN LATERAL ( \
               SELECT m.tenant_id, m.user_id, u.name, u.email, m.role, m.created_at FROM memberships m \
               JOIN users u ON u.id = m.user_id \
               WHERE m.tenant_id = (SELECT tenant_id FROM me) AND (m.created_at, m.user_id) > ($2::timestamptz, $3::uuid) \
               ORDER BY m.created_at, m.user_id LIMIT $4::int8) x ON true"
        ),
        Q::MemberPut => concat!(
            "WITH ",
            me!(),
            ", target AS (SELECT role FROM memberships WHERE tenant_id = (SELECT tenant_id FROM me) AND user_id = $2::uuid), \
             others AS (SELECT count(*) AS n FROM memberships \
                        WHERE tenant_id = (SELECT tenant_id FROM me) AND role = 'admin' AND user_id <> $2::uuid), \
             ok AS (SELECT 1 FROM me WHERE me.role = 'admin' AND EXISTS (SELECT 1 FROM target) \
                    AND ($3::text = 'admin' OR (SELECT n FROM others) > 0)), \
             up AS (UPDATE memberships SET role = $3::text WHERE tenant_id = (SELECT tenant_id FROM me) \
                    AND user_id = $2::uuid AND EXISTS (SELECT 1 FROM ok) RETURNING 1) \
             SELECT me.role, EXISTS (SELECT 1 FROM target), EXISTS (SELECT 1 FROM ok) FROM me"
        ),
        Q::MemberGet => concat!(
            "WITH ",
            me!(),
            " SELECT m.tenant_id, m.user_id, u.name, u.email, m.role, m.created_at FROM memberships m \
             JOIN users u ON u.id = m.user_id WHERE m.tenant_id = (SELECT tenant_id FROM me) AND m.user_id = $2::uuid"
        ),
        Q::MemberDelete => concat!(
            "WITH ",
            me!(),
            ", target AS (SELECT role FROM memberships WHERE tenant_id = (SELECT tenant_id FROM me) AND user_id = $2::uuid), \
             others AS (SELECT count(*) AS n FROM memberships \
                        WHERE tenant_id = (SELECT tenant_id FROM me) AND role = 'admin' AND user_id <> $2::uuid), \
             del AS (DELETE FROM memberships WHERE tenant_id = (SELECT tenant_id FROM me) AND user_id = $2::uuid \
                     AND EXISTS (SELECT 1 FROM me WHERE me.role = 'admin' OR $2::uuid = $U) \
                     AND ((SELECT role FROM target) <> 'admin' OR (SELECT n FROM others) > 0) RETURNING 1) \
             SELECT me.role, (SELECT role FROM target), (SELECT n FROM others), EXISTS (SELECT 1 FROM del) FROM me"
        ),

        Q::TodoList => concat!(
            "WITH ",
            me!(),
            " SELECT me.role, x.tenant_id, x.id, x.title, x.complete, x.created_at, x.updated_at \
             FROM me LEFT JOIN LATERAL ( \
               SELECT tenant_id, id, title, complete, created_at, updated_at FROM todos \
               WHERE tenant_id = (SELECT tenant_id FROM me) AND ($2::bool IS NULL OR complete = $2::bool) \
                 AND (created_at, id) > ($3::timestamptz, $4::uuid) \
               ORDER BY created_at, id LIMIT $5::int8) x ON true"
        ),
        Q::TodoCreate => concat!(
            "WITH ",
            me!(),
            ", ins AS (INSERT INTO todos (tenant_id, id, title, complete) \
                      SELECT me.tenant_id, $2::uuid, $3::text, $4::bool FROM me WHERE me.role IN ('admin', 'member') \
                      RETURNING tenant_id, id, title, complete, created_at, updated_at) \
             SELECT me.role, ins.tenant_id, ins.id, ins.title, ins.complete, ins.created_at, ins.updated_at \
             FROM me LEFT JOIN ins ON true"
        ),
        Q::TodoGet => concat!(
            "WITH ",
            me!(),
            " SELECT me.role, t.tenant_id, t.id, t.title, t.complete, t.created_at, t.updated_at \
             FROM me LEFT JOIN todos t ON t.tenant_id = me.tenant_id AND t.id = $2::uuid"
        ),
        Q::TodoUpdate => concat!(
            "WITH ",
            me!(),
            ", upd AS (UPDATE todos SET title = coalesce($3::text, title), complete = coalesce($4::bool, complete), \
                                       updated_at = now() \
                      WHERE tenant_id = (SELECT tenant_id FROM me WHERE role IN ('admin', 'member')) AND id = $2::uuid \
                      RETURNING tenant_id, id, title, complete, created_at, updated_at) \
             SELECT me.role, upd.tenant_id, upd.id, upd.title, upd.complete, upd.created_at, upd.updated_at \
             FROM me LEFT JOIN upd ON true"
        ),
        Q::TodoDelete => concat!(
            "WITH ",
            me!(),
            ", del AS (DELETE FROM todos WHERE tenant_id = (SELECT tenant_id FROM me WHERE role IN ('admin', 'member')) \
                      AND id = $2::uuid RETURNING id) \
             SELECT me.role, EXISTS (SELECT 1 FROM del) FROM me"
        ),
        Q::TodoListAll => concat!(
            "WITH ",
            mine!(),
            " SELECT tenant_id, id, title, complete, created_at, updated_at FROM todos \
             WHERE tenant_id IN (SELECT tenant_id FROM mine) AND ($1::bool IS NULL OR complete = $1::bool) \
               AND (created_at, tenant_id, id) > ($2::timestamptz, $3::uuid, $4::uuid) \
             ORDER BY created_at, tenant_id, id LIMIT $5::int8"
        ),

        Q::InvitationCreate => concat!(
            "WITH ",
            me!(),
            ", ins AS (INSERT INTO invitations (tenant_id, code_hash, role, email, created_by, expires_at) \
                      SELECT me.tenant_id, $2::bytea, $3::text, $4::text, $U, now() + $5::int8 * interval '1 second' \
                      FROM me WHERE me.role = 'admin' \
                      RETURNING tenant_id, id, role, email, created_at, expires_at, created_by) \
             SELECT me.role, ins.tenant_id, ins.id, ins.role, ins.email, ins.created_at, ins.expires_at, ins.created_by \
             FROM me LEFT JOIN ins ON true"
        ),
        Q::InvitationList => concat!(
            "WITH ",
            me!(),
            " SELECT me.role, x.tenant_id, x.id, x.role, x.email, x.created_at, x.expires_at, x.created_by \
             FROM me LEFT JOIN LATERAL ( \
               SELECT i.tenant_id, i.id, i.role, i.email, i.created_at, i.expires_at, i.created_by FROM invitations i \
               WHERE i.tenant_id = (SELECT tenant_id FROM me WHERE role = 'admin') AND i.expires_at > now() \
                 AND EXISTS (SELECT 1 FROM memberships mk WHERE mk.tenant_id = i.tenant_id \
                             AND mk.user_id = i.created_by AND mk.role = 'admin') \
                 AND (i.created_at, i.id) > ($2::timestamptz, $3::uuid) \
               ORDER BY i.created_at, i.id LIMIT $4::int8) x ON true"
        ),
        Q::InvitationRevoke => concat!(
            "WITH ",
            me!(),
            ", del AS (DELETE FROM invitations WHERE tenant_id = (SELECT tenant_id FROM me WHERE role = 'admin') \
                      AND id = $2::uuid RETURNING id) \
             SELECT me.role, EXISTS (SELECT 1 FROM del) FROM me"
        ),
        // Holding the code is the capability: the invitation is reached by its hash only.
        Q::InvitationAccept => {
            "WITH caller AS (SELECT id FROM users WHERE id = $U FOR UPDATE), \
             inv AS (SELECT i.tenant_id, i.role FROM invitations i \
                          JOIN tenants s ON s.id = i.tenant_id AND s.deleted_at IS NULL \
                          WHERE i.code_hash = $1::bytea AND i.expires_at > now() \
                            AND (i.email IS NULL OR i.email = $2::text) \
                            AND EXISTS (SELECT 1 FROM memberships mk WHERE mk.tenant_id = i.tenant_id \
                                        AND mk.user_id = i.created_by AND mk.role = 'admin')), \
             already AS (SELECT m.tenant_id FROM memberships m WHERE m.user_id = $U \
                         AND m.tenant_id IN (SELECT tenant_id FROM inv)), \
             ok AS (SELECT 1 FROM inv WHERE NOT EXISTS (SELECT 1 FROM already)), \
             del AS (DELETE FROM invitations d WHERE d.code_hash = $1::bytea AND EXISTS (SELECT 1 FROM ok) \
                     RETURNING d.tenant_id, d.role), \
             ins AS (INSERT INTO memberships (tenant_id, user_id, role) SELECT del.tenant_id, $U, del.role FROM del \
                     WHERE EXISTS (SELECT 1 FROM caller) \
                     RETURNING tenant_id, role) \
             SELECT EXISTS (SELECT 1 FROM inv), EXISTS (SELECT 1 FROM already), ins.tenant_id, ins.role, NULL::text \
             FROM (SELECT 1) one LEFT JOIN ins ON true"
        }
        // The caller's tenants, the one joined by the statement before among them (the newest;
        // the store picks it by id).
        Q::InvitationTenant => {
            "SELECT t.id, t.name FROM memberships m JOIN tenants t ON t.id = m.tenant_id \
             WHERE m.user_id = $U AND t.deleted_at IS NULL ORDER BY m.created_at DESC LIMIT 200"
        }

        // No advisory locks on DSQL: the claim inserts the record first, and every recorded
        // statement appends to it (`dsql::recorded`).
        Q::IdemClaim => {
            "WITH stale AS (DELETE FROM idempotency_keys WHERE user_id = $U AND tenant_id = $1::uuid \
                                 AND key = $2::text AND expires_at < now() RETURNING 1) \
             INSERT INTO idempotency_keys (user_id, tenant_id, key, fingerprint, expires_at, claim) \
             SELECT $U, $1::uuid, $2::text, $3::bytea, now() + $4::int8 * interval '1 second', $5::uuid \
             FROM (SELECT count(*) FROM stale) replaced RETURNING true"
        }
        Q::IdemFetch => {
            "SELECT fingerprint, results, true, claim FROM idempotency_keys \
             WHERE user_id = $U AND tenant_id = $1::uuid AND key = $2::text AND expires_at >= now()"
        }
        Q::IdemForget => {
            "DELETE FROM idempotency_keys WHERE user_id = $U AND tenant_id = $1::uuid AND key = $2::text \
             AND claim = $3::uuid"
        }
        // Expired records of anyone, a batch at a time (the scheduled cleanup).
        Q::IdemCleanup => {
            "WITH gone AS (DELETE FROM idempotency_keys WHERE (user_id, tenant_id, key) IN \
                 (SELECT e.user_id, e.tenant_id, e.key FROM idempotency_keys e WHERE e.expires_at < now() LIMIT $1::int4) \
                 RETURNING 1) \
             SELECT count(*) FROM gone"
        }
        // Up to `$2` rows of each table of tenant `$1`, once it is marked deleted. Its own row
        // goes when nothing else of it was left at the start of this statement and it was marked
        // long enough ago that no transaction that began before could still add a row (they
        // last at most 5 minutes on DSQL, and a write that only read the tenant's row does not
        // conflict with the mark): until then its id stays taken, and the daily cleanup
        // removes what such a transaction added. The count of rows removed: 0 when done.
        Q::PurgeTenant => {
            "WITH gone AS (SELECT 1 FROM tenants WHERE id = $1::uuid AND deleted_at IS NOT NULL), \
             a AS (DELETE FROM todos WHERE tenant_id = $1::uuid AND EXISTS (SELECT 1 FROM gone) AND id IN \
                     (SELECT id FROM todos WHERE tenant_id = $1::uuid LIMIT $2::int8) RETURNING 1), \
             b AS (DELETE FROM invitations WHERE tenant_id = $1::uuid AND EXISTS (SELECT 1 FROM gone) AND id IN \
                     (SELECT id FROM invitations WHERE tenant_id = $1::uuid LIMIT $2::int8) RETURNING 1), \
             c AS (DELETE FROM memberships WHERE tenant_id = $1::uuid AND EXISTS (SELECT 1 FROM gone) AND user_id IN \
                     (SELECT user_id FROM memberships WHERE tenant_id = $1::uuid LIMIT $2::int8) RETURNING 1), \
             d AS (DELETE FROM tenants WHERE id = $1::uuid AND EXISTS (SELECT 1 FROM gone) \
                     AND deleted_at < now() - interval '10 minutes' \
                     AND NOT EXISTS (SELECT 1 FROM todos WHERE tenant_id = $1::uuid) \
                     AND NOT EXISTS (SELECT 1 FROM invitations WHERE tenant_id = $1::uuid) \
                     AND NOT EXISTS (SELECT 1 FROM memberships WHERE tenant_id = $1::uuid) RETURNING 1) \
             SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b) + (SELECT count(*) FROM c) \
                  + (SELECT count(*) FROM d)"
        }
        // Deleted tenants whose purge was cut short (for the daily cleanup).
        Q::OrphanTenants => "SELECT id FROM tenants WHERE deleted_at IS NOT NULL LIMIT 100",
        Q::Echo => "SELECT $1::text",
        // Placements are an Aurora PostgreSQL feature: on DSQL nothing runs these.
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
        | Q::TenantAway => "SELECT NULL::boolean WHERE false",
    }
}
