//! The text of the statements on DSQL of a tenant's data (todos, invitations), of
//! `Idempotency-Key` records, of the purge of deleted tenants and of rate limits (see the parent
//! module for the rules they follow).

use crate::Q;

/// The template of `q` on DSQL, for tenants' data, records, purges and rate limits: `$U` is
/// the caller's id; the others are in `templates.rs`.
pub(super) fn data(q: Q) -> Option<&'static str> {
    Some(match q {
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
        // The quota: the tenant's row written (its plan set to itself), so that two creates that
        // both counted room write one row and one of them conflicts; its retry counts again
        // (docs/dsql.md, "Count quotas").
        Q::TodoCreate => concat!(
            "WITH ",
            me!(),
            ", lk AS (UPDATE tenants s SET plan = s.plan \
                      WHERE s.id = (SELECT tenant_id FROM me WHERE role IN ('admin', 'member')) RETURNING s.id, s.plan), \
             room AS (SELECT ($5::text[])[p.i] AS plan, ($6::int8[])[p.i] AS cap, \
                             (SELECT count(*) FROM (SELECT 1 FROM todos x WHERE x.tenant_id = (SELECT tenant_id FROM me) \
                               LIMIT ($6::int8[])[p.i]) c) AS used \
                      FROM lk CROSS JOIN LATERAL (SELECT coalesce(array_position($5::text[], lk.plan), 1) AS i) p), \
             ins AS (INSERT INTO todos (tenant_id, id, title, complete) \
                      SELECT me.tenant_id, $2::uuid, $3::text, $4::bool FROM me \
                      WHERE me.role IN ('admin', 'member') AND EXISTS (SELECT 1 FROM room WHERE room.used < room.cap) \
                      RETURNING tenant_id, id, title, complete, created_at, updated_at) \
             SELECT me.role, ins.tenant_id, ins.id, ins.title, ins.complete, ins.created_at, ins.updated_at, \
                    room.plan, room.cap, room.used \
             FROM me LEFT JOIN ins ON true LEFT JOIN room ON true"
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
            ", lk AS (UPDATE tenants s SET plan = s.plan WHERE s.id = (SELECT tenant_id FROM me WHERE role = 'admin') \
                      RETURNING s.id, s.plan), \
             room AS (SELECT ($6::text[])[p.i] AS plan, ($7::int8[])[p.i] AS cap, \
                             (SELECT count(*) FROM (SELECT 1 FROM invitations x WHERE x.tenant_id = (SELECT tenant_id FROM me) \
                               AND x.expires_at > now() LIMIT ($7::int8[])[p.i]) c) AS used \
                      FROM lk CROSS JOIN LATERAL (SELECT coalesce(array_position($6::text[], lk.plan), 1) AS i) p), \
             ins AS (INSERT INTO invitations (tenant_id, code_hash, role, email, created_by, expires_at) \
                      SELECT me.tenant_id, $2::bytea, $3::text, $4::text, $U, now() + $5::int8 * interval '1 second' \
                      FROM me WHERE me.role = 'admin' AND EXISTS (SELECT 1 FROM room WHERE room.used < room.cap) \
                      RETURNING tenant_id, id, role, email, created_at, expires_at, created_by) \
             SELECT me.role, ins.tenant_id, ins.id, ins.role, ins.email, ins.created_at, ins.expires_at, ins.created_by, \
                    room.plan, room.cap, room.used \
             FROM me LEFT JOIN ins ON true LEFT JOIN room ON true"
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
             lk AS (UPDATE tenants s SET plan = s.plan WHERE s.id = (SELECT tenant_id FROM inv) RETURNING s.id, s.plan), \
             room AS (SELECT ($3::text[])[p.i] AS plan, ($4::int8[])[p.i] AS cap, \
                             (SELECT count(*) FROM (SELECT 1 FROM memberships x WHERE x.tenant_id = (SELECT tenant_id FROM inv) \
                               LIMIT ($4::int8[])[p.i]) c) AS used \
                      FROM lk CROSS JOIN LATERAL (SELECT coalesce(array_position($3::text[], lk.plan), 1) AS i) p), \
             already AS (SELECT m.tenant_id FROM memberships m WHERE m.user_id = $U \
                         AND m.tenant_id IN (SELECT tenant_id FROM inv)), \
             ok AS (SELECT 1 FROM inv, room WHERE NOT EXISTS (SELECT 1 FROM already) AND room.used < room.cap), \
             del AS (DELETE FROM invitations d WHERE d.code_hash = $1::bytea AND EXISTS (SELECT 1 FROM ok) \
                     RETURNING d.tenant_id, d.role), \
             ins AS (INSERT INTO memberships (tenant_id, user_id, role) SELECT del.tenant_id, $U, del.role FROM del \
                     WHERE EXISTS (SELECT 1 FROM caller) \
                     RETURNING tenant_id, role) \
             SELECT EXISTS (SELECT 1 FROM inv), EXISTS (SELECT 1 FROM already), ins.tenant_id, ins.role, NULL::text, \
                    room.plan, room.cap, room.used \
             FROM (SELECT 1) one LEFT JOIN ins ON true LEFT JOIN room ON true"
        }
        // The caller's tenants, the one joined by the statement before among them (the newest;
        // the store picks it by id).
        Q::InvitationTenant => {
            "SELECT t.id, t.name FROM memberships m JOIN tenants t ON t.id = m.tenant_id \
             WHERE m.user_id = $U AND t.deleted_at IS NULL ORDER BY m.created_at DESC LIMIT 200"
        }

        // Rate limits (issue 24): the caller's own row, or a tenant's of which they are a member.
        Q::RateRowTenant => concat!(
            "WITH ",
            me!(),
            " INSERT INTO rate_limits (kind, key) SELECT 'tenant', me.tenant_id FROM me ON CONFLICT DO NOTHING"
        ),
        Q::RateRowCaller => "INSERT INTO rate_limits (kind, key) SELECT 'caller', $U WHERE true ON CONFLICT DO NOTHING",
        Q::RateLeaseTenant => concat!(
            "WITH ",
            me!(),
            ", lim AS (SELECT ($4::int8[])[p.i] AS t_us, ($5::int8[])[p.i] AS burst \
                FROM (SELECT coalesce(array_position($3::text[], \
                  (SELECT s.plan FROM tenants s WHERE s.id = (SELECT tenant_id FROM me))), 1) AS i) p)",
            lease_after_lim!("$2::int8", "tenant", "(SELECT tenant_id FROM me)")
        ),
        Q::RateLeaseCaller => concat!(
            "WITH lim AS (SELECT ($2::int8[])[1] AS t_us, ($3::int8[])[1] AS burst)",
            lease_after_lim!("$1::int8", "caller", "$U")
        ),

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
        _ => return None,
    })
}
