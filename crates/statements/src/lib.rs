//! Every SQL statement the API runs, by name ([`Q`]), in both dialects, side by side: the
//! PostgreSQL text ([`Q::sql`], where row-level security keys on the session's scope) and the
//! Aurora DSQL template ([`dsql::template`], where each statement resolves the caller's scope
//! itself), and the recording variants that an `Idempotency-Key` runs instead ([`recording`]
//! for PostgreSQL, [`dsql::recorded`] for DSQL).
//!
//! Text only: it knows no connection, no pool, no tenant and no migration. The store prepares
//! these on each connection and runs them; `tests/dsql_scope.rs` in `store` checks that every
//! DSQL statement is bound to the caller's scope.

/// A rate-limit lease (`limits::grant` in SQL) after a CTE `lim (t_us, burst)`: up to `$want`
/// requests of row (`$kind`, `$key`). Both dialects' lease statements are this one text with
/// their own `lim` and key (`rate_limits.rs`, `dsql/data.rs`).
macro_rules! lease_after_lim {
    ($want:literal, $kind:literal, $key:literal) => {
        concat!(
            ", n AS (SELECT (extract(epoch FROM statement_timestamp()) * 1000000)::bigint AS now_us), \
             upd AS (UPDATE rate_limits r \
                       SET tat_us = GREATEST(r.tat_us, n.now_us) + lim.t_us * LEAST(",
            $want,
            ", (n.now_us + lim.burst * lim.t_us - GREATEST(r.tat_us, n.now_us)) / lim.t_us), \
                           granted = LEAST(",
            $want,
            ", (n.now_us + lim.burst * lim.t_us - GREATEST(r.tat_us, n.now_us)) / lim.t_us) \
                      FROM lim, n \
                     WHERE r.kind = '",
            $kind,
            "' AND r.key = ",
            $key,
            " AND n.now_us + lim.burst * lim.t_us - GREATEST(r.tat_us, n.now_us) >= lim.t_us \
                     RETURNING r.granted, r.tat_us) \
             SELECT coalesce((SELECT granted FROM upd), 0), \
                    coalesce((SELECT tat_us FROM upd), (SELECT x.tat_us FROM rate_limits x WHERE x.kind = '",
            $kind,
            "' AND x.key = ",
            $key,
            ")) - n.now_us, lim.t_us, lim.burst \
             FROM n, lim"
        )
    };
}

pub mod dsql;
mod postgres;
mod rate_limits;
pub mod recording;

pub use postgres::Q;
