//! Rate-limit leases (issue 24) as the store sends them. The instance's limiter
//! (`limits::LocalLimiter`, in `api`) decides that a request needs a lease of its key's shared
//! budget; the store sends the lease statement in the pipeline of the request's first
//! transaction on the control database, **after that transaction's COMMIT, as a transaction of
//! its own**, so that the request's transaction is unchanged (a read stays `READ ONLY`), and a
//! failed lease (a conflict on DSQL) is not a failure of the request. It costs no round trip of
//! its own. A request that never reaches the control database (a dedicated tenant's todo route,
//! or one refused before any transaction) leaves its lease unsent: the API sends it alone with
//! [`Scoped::lease`](crate::Scoped::lease).
//!
//! The statements are `Q::RateRow*` (the key's row, made the first time) and `Q::RateLease*`
//! (`limits::grant` in SQL) in `crates/statements`; the table is `rate_limits`
//! (`migrations/0008_rate_limits.sql`, `migrations/dsql/0005_rate_limits.sql`).

use std::sync::Mutex;

use crate::{TenantId, UserId, rows::DbRow};

/// Whose budget a request spends: a tenant's (tenant routes, for its members), or the caller's
/// own (routes outside a tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    Tenant(TenantId),
    Caller(UserId),
}

/// What a lease statement answered: the requests granted, the shared TAT minus the database's
/// now (µs, negative when the key is idle), and the limit of the key's plan (its emission
/// interval in µs and its burst).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leased {
    pub granted: i64,
    pub tat_ahead_us: i64,
    pub interval_us: i64,
    pub burst: i64,
}

impl Leased {
    /// From the statement's row; `None` when the key's row was not there.
    pub(crate) fn from_row(row: &DbRow) -> Option<Self> {
        Some(Self {
            granted: row.col::<Option<i64>>(0)?,
            tat_ahead_us: row.col::<Option<i64>>(1)?,
            interval_us: row.col::<Option<i64>>(2)?,
            burst: row.col::<Option<i64>>(3)?,
        })
    }
}

#[derive(Debug, Default)]
enum Slot {
    #[default]
    Empty,
    Asked(RateKey, u32),
    Sent,
    Answered(Option<Leased>),
}

/// A lease that one request carries: asked by the API, taken by the first pipeline that runs on
/// the control database, answered back here.
#[derive(Debug, Default)]
pub struct LeaseSlot(Mutex<Slot>);

/// Where a request's lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// None was asked.
    None,
    /// Asked, and not sent: no transaction of the request ran on the control database.
    Unsent(RateKey, u32),
    /// Sent; `None` when the statement failed (a conflict, a lost connection).
    Answered(Option<Leased>),
}

impl LeaseSlot {
    /// A slot asking for a lease of `want` requests of `key`.
    pub fn ask(key: RateKey, want: u32) -> Self {
        Self(Mutex::new(Slot::Asked(key, want)))
    }

    /// The lease to send, once: the first pipeline that asks takes it.
    pub(crate) fn take(&self) -> Option<(RateKey, u32)> {
        let mut slot = self.0.lock().expect("lease slot");
        match *slot {
            Slot::Asked(key, want) => {
                *slot = Slot::Sent;
                Some((key, want))
            }
            _ => None,
        }
    }

    pub(crate) fn answer(&self, leased: Option<Leased>) {
        *self.0.lock().expect("lease slot") = Slot::Answered(leased);
    }

    /// Where the lease ended (after the request's transactions).
    pub fn state(&self) -> LeaseState {
        match *self.0.lock().expect("lease slot") {
            Slot::Empty => LeaseState::None,
            Slot::Asked(key, want) => LeaseState::Unsent(key, want),
            // Taken by a pipeline that was dropped before it answered (a deadline).
            Slot::Sent => LeaseState::Answered(None),
            Slot::Answered(leased) => LeaseState::Answered(leased),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_taken_once_and_answered() {
        let key = RateKey::Caller(UserId(uuid::Uuid::nil()));
        let slot = LeaseSlot::ask(key, 3);
        assert_eq!(slot.state(), LeaseState::Unsent(key, 3));
        assert_eq!(slot.take(), Some((key, 3)));
        assert_eq!(slot.take(), None, "once");
        assert_eq!(slot.state(), LeaseState::Answered(None), "taken and not answered: failed");
        let leased = Leased { granted: 2, tat_ahead_us: 10, interval_us: 20_000, burst: 400 };
        slot.answer(Some(leased));
        assert_eq!(slot.state(), LeaseState::Answered(Some(leased)));
        assert_eq!(LeaseSlot::default().state(), LeaseState::None);
    }
}
