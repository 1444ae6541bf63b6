//! The text of the statements on DSQL of the scope, users, tenants and members (see the parent
//! module for the rules they follow; tenants' data, records and rate limits: `data.rs`).

use crate::Q;

/// The template of `q` on DSQL, for the scope, users, tenants and members: `$U` is the caller's id;
/// the others are in `data.rs`.
pub(super) fn identity(q: Q) -> Option<&'static str> {
    Some(match q {
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
        // The caller's row written (not only read FOR UPDATE), so that two creates of one user
        // that both counted room conflict: the tenants quota.
        Q::TenantCreate => {
            "WITH caller AS (UPDATE users SET updated_at = updated_at WHERE id = $U RETURNING id), \
             room AS (SELECT ($3::text[])[1] AS plan, ($4::int8[])[1] AS cap, \
                             (SELECT count(*) FROM (SELECT 1 FROM memberships m JOIN tenants s ON s.id = m.tenant_id \
                               AND s.deleted_at IS NULL WHERE m.user_id = $U AND m.role = 'admin' \
                               LIMIT ($4::int8[])[1]) c) AS used), \
             t AS (INSERT INTO tenants (id, name) SELECT $1::uuid, $2::text FROM room \
                     WHERE EXISTS (SELECT 1 FROM caller) AND room.used < room.cap RETURNING id, name, created_at), \
             a AS (INSERT INTO memberships (tenant_id, user_id, role) SELECT t.id, $U, 'admin' FROM t RETURNING tenant_id, role) \
             SELECT t.id, t.name, a.role, t.created_at, room.plan, room.cap, room.used \
             FROM room LEFT JOIN t ON true LEFT JOIN a ON a.tenant_id = t.id \
             WHERE EXISTS (SELECT 1 FROM caller)"
        }
        Q::TenantList => {
            "SELECT t.id, t.name, m.role, t.created_at FROM tenants t \
             JOIN memberships m ON m.tenant_id = t.id AND m.user_id = $U \
             WHERE t.deleted_at IS NULL AND (t.created_at, t.id) > ($1::timestamptz, $2::uuid) ORDER BY t.created_at, t.id LIMIT $3::int8"
        }
        Q::TenantGet => {
            "SELECT t.id, t.name, m.role, t.created_at, ($2::text[])[p.i], \
               CASE WHEN m.role = 'admin' THEN (SELECT count(*) FROM (SELECT 1 FROM todos x \
                 WHERE x.tenant_id = m.tenant_id LIMIT ($3::int8[])[p.i]) c) END, \
               CASE WHEN m.role = 'admin' THEN (SELECT count(*) FROM (SELECT 1 FROM memberships x \
                 WHERE x.tenant_id = m.tenant_id LIMIT ($4::int8[])[p.i]) c) END, \
               CASE WHEN m.role = 'admin' THEN (SELECT count(*) FROM (SELECT 1 FROM invitations x \
                 WHERE x.tenant_id = m.tenant_id AND x.expires_at > now() LIMIT ($5::int8[])[p.i]) c) END, \
               ($3::int8[])[p.i], ($4::int8[])[p.i], ($5::int8[])[p.i], false \
             FROM tenants t JOIN memberships m ON m.tenant_id = t.id AND m.user_id = $U \
             CROSS JOIN LATERAL (SELECT coalesce(array_position($2::text[], t.plan), 1) AS i) p \
             WHERE t.id = $1::uuid AND t.deleted_at IS NULL"
        }
        Q::TodoCount => concat!(
            "WITH ",
            me!(),
            " SELECT me.role, (SELECT count(*) FROM (SELECT 1 FROM todos x WHERE x.tenant_id = (SELECT tenant_id FROM me) \
               AND me.role = 'admin' LIMIT $2::int8) c) FROM me"
        ),
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
        _ => return None,
    })
}
