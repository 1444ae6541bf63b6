//! The PostgreSQL text of the rate-limit statements (issue 24; `store::lease`): a key's row,
//! made the first time it takes a lease, and the lease itself, `limits::grant` in SQL. Each runs
//! after the request's COMMIT, in a transaction of its own, with the caller (and for a
//! tenant's budget, the tenant) in scope: `migrations/0008_rate_limits.sql`'s policy admits the
//! caller's own row and those of tenants they are a member of.

/// A tenant's rate-limit row (tenant `$1`, in scope: the caller is a member), made the first
/// time it takes a lease (issue 24, `migrations/0008_rate_limits.sql`).
pub(crate) const RATE_ROW_TENANT: &str = "INSERT INTO rate_limits (kind, key) SELECT 'tenant', $1::uuid \
         WHERE $1::uuid = ANY (app_tenant_ids()) ON CONFLICT DO NOTHING";

/// The caller's own rate-limit row.
pub(crate) const RATE_ROW_CALLER: &str =
    "INSERT INTO rate_limits (kind, key) SELECT 'caller', app_user_id() ON CONFLICT DO NOTHING";

/// A lease of up to `$2` requests of tenant `$1`'s budget (GCRA, `limits::grant` line for
/// line): `$3` plan names (the default first), `$4` their emission intervals (µs), `$5`
/// their bursts. Columns: granted, the shared TAT minus the database's now (µs; NULL when
/// the row is not there), and the plan's interval and burst. Partial grants; no write when
/// nothing fits.
pub(crate) const RATE_LEASE_TENANT: &str = concat!(
    "WITH lim AS (SELECT ($4::int8[])[p.i] AS t_us, ($5::int8[])[p.i] AS burst \
       FROM (SELECT coalesce(array_position($3::text[], (SELECT s.plan FROM tenants s WHERE s.id = $1::uuid)), 1) AS i) p)",
    lease_after_lim!("$2::int8", "tenant", "$1::uuid")
);

/// A lease of up to `$1` requests of the caller's own budget, under the default plan's rate
/// (`$2` intervals, `$3` bursts: the first is the default's). Columns as `RateLeaseTenant`.
pub(crate) const RATE_LEASE_CALLER: &str = concat!(
    "WITH lim AS (SELECT ($2::int8[])[1] AS t_us, ($3::int8[])[1] AS burst)",
    lease_after_lim!("$1::int8", "caller", "app_user_id()")
);
