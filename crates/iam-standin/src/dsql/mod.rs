//! The stand-in's DSQL mode past the login: a relay that makes the local PostgreSQL fail the
//! way Aurora DSQL fails.
//!
//! - [`rules`]: statements DSQL does not support are refused with DSQL's SQLSTATE, before the
//!   PostgreSQL behind sees them; DSQL's own syntax (`CREATE INDEX ASYNC`, `AWS IAM GRANT`) is
//!   rewritten to the emulation of its `sys` schema ([`sys`]).
//! - [`relay`]: transactions as DSQL runs them: one DDL statement at most, never with DML;
//!   limits on rows (and index entries), bytes and age, checked before the commit goes on;
//!   snapshot isolation where a lock that PostgreSQL would wait for is a conflict (40001,
//!   OC000) at once; and commits failed on purpose (the fault knob).
//! - [`Limits`]: DSQL's documented quotas, scaled down in tests.
//!
//! docs/dsql.md lists every rule, where it comes from, and what the stand-in cannot emulate.

pub(crate) mod errors;
pub(crate) mod relay;
pub(crate) mod rules;
pub(crate) mod shared;
pub mod sys;
pub(crate) mod transaction;

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// DSQL's limits, as the stand-in enforces them. The defaults are DSQL's
/// (<https://docs.aws.amazon.com/aurora-dsql/latest/userguide/CHAP_quotas.html>).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Rows a transaction may insert, update or delete, each index entry it changes counted as
    /// a row too (the strictest reading of DSQL's 3,000).
    pub rows_per_transaction: u64,
    /// Bytes a transaction may write (what the stand-in counts: the text of its writing
    /// statements and the values bound to them).
    pub bytes_per_transaction: u64,
    /// How long a transaction may run.
    pub transaction_age: Duration,
    /// Connections open at once.
    pub max_connections: u64,
    /// New connections per second, after the burst.
    pub connection_rate: u64,
    /// New connections at once.
    pub connection_burst: u64,
    /// How long PostgreSQL may wait for a row lock before the stand-in answers the conflict
    /// DSQL would have reported: DSQL never waits.
    pub lock_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rows_per_transaction: 3_000,
            bytes_per_transaction: 10 * 1024 * 1024,
            transaction_age: Duration::from_secs(300),
            max_connections: 10_000,
            connection_rate: 100,
            connection_burst: 1_000,
            lock_wait: Duration::from_millis(1),
        }
    }
}

/// What the DSQL mode refused and counted, for tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Statements and commits refused by a rule or a limit.
    pub refused: AtomicU64,
    /// The most rows (with index entries) any transaction asked to commit.
    pub max_rows: AtomicU64,
    /// Conflicts answered for a lock PostgreSQL would have waited for, or a serialization failure.
    pub conflicts: AtomicU64,
}

impl Counters {
    pub(crate) fn saw_rows(&self, rows: u64) {
        self.max_rows.fetch_max(rows, Ordering::SeqCst);
    }
}

/// Connections per second, as a token bucket.
#[derive(Debug)]
pub(crate) struct Rate {
    tokens: f64,
    at: std::time::Instant,
}

impl Default for Rate {
    fn default() -> Self {
        Self { tokens: f64::MAX, at: std::time::Instant::now() }
    }
}

impl Rate {
    /// Takes a token for a new connection, if `limits` leave one.
    pub(crate) fn admit(&mut self, limits: &Limits) -> bool {
        let now = std::time::Instant::now();
        let burst = limits.connection_burst as f64;
        let refill = now.duration_since(self.at).as_secs_f64() * limits.connection_rate as f64;
        self.tokens = (self.tokens.min(burst) + refill).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
