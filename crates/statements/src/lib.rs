//! Every SQL statement the API runs, by name ([`Q`]), in both dialects, side by side: the
//! PostgreSQL text ([`Q::sql`], where row-level security keys on the session's scope) and the
//! Aurora DSQL template ([`dsql::template`], where each statement resolves the caller's scope
//! itself), and the recording variants that an `Idempotency-Key` runs instead ([`recording`]
//! for PostgreSQL, [`dsql::recorded`] for DSQL).
//!
//! Text only: it knows no connection, no pool, no tenant and no migration. The store prepares
//! these on each connection and runs them; `tests/dsql_scope.rs` in `store` checks that every
//! DSQL statement is bound to the caller's scope.

pub mod dsql;
mod postgres;
mod rate_limits;
pub mod recording;

pub use postgres::Q;
