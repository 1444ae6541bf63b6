//! The instance side of the cross-instance limiter: per key (a tenant id, or a caller id for
//! routes outside a tenant), the requests this instance holds of the key's shared budget, spent
//! without asking anyone.
//!
//! Per key the instance keeps:
//!
//! - `tokens`: requests leased from the shared row and not yet spent (at most `max_lease`);
//! - `credit`: requests it admitted before their lease was charged to the shared row (at most
//!   the limiter's `credit`, 1 by default). A request that finds no token is admitted on credit
//!   and carries the lease statement in its own pipeline; the lease then pays for it first;
//! - what it last learned of the shared TAT: after a lease that came back short, it refuses
//!   locally until the row has room for its unpaid credit and a lease again; and it fills in the
//!   `RateLimit` header;
//! - the size of its next lease, which starts at 1 and doubles while leases run out within
//!   [`LEASE_HORIZON`] (halves when one lasted four horizons), up to `max(1, burst / 8)`.
//!
//! Memory is bounded: at most `capacity` keys; when full, the least recently used eighth goes.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use crate::gcra::{Decision, Limit};
use crate::lease::LeaseOutcome;

/// A lease that ran out within this time doubles the next one; one that lasted four times it
/// halves the next one.
pub const LEASE_HORIZON: Duration = Duration::from_secs(1);

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Serve it; no database work for the limiter.
    Local(Decision),
    /// Serve it (it is admitted on credit), and append the lease statement for `want` requests
    /// to its pipeline, as its own single-statement transaction. Then
    /// [`record_grant`](LocalLimiter::record_grant) whatever came back (its [`Decision`] is this
    /// request's `RateLimit` header), [`LeaseOutcome::Failed`] if the statement failed: the
    /// request itself is answered either way.
    NeedLease { want: u32 },
    /// The key's credit is used up (earlier lease statements failed or are still running): send
    /// the lease statement for `want` alone first, record its outcome, then call
    /// [`admit`](LocalLimiter::admit) again for this request. If the statement fails again,
    /// answer 503 with `Retry-After`, as for any conflict that outlasts its retries.
    LeaseFirst { want: u32 },
    /// Refuse it with 429, `Retry-After` and the rate-limit headers, without touching the
    /// database: the last lease came back short, and the shared budget will not have room for
    /// this key's unpaid credit and a lease before `retry_after`.
    Refused(Decision),
}

#[derive(Debug, Clone)]
struct Entry {
    limit: Option<Limit>,
    tokens: u32,
    credit: u32,
    lease: u32,
    last_grant: Option<Duration>,
    /// The shared TAT as last learned, on this instance's clock.
    tat: Duration,
    refuse_until: Duration,
    used: u64,
}

impl Entry {
    fn new() -> Self {
        Self {
            limit: None,
            tokens: 0,
            credit: 0,
            lease: 1,
            last_grant: None,
            tat: Duration::ZERO,
            refuse_until: Duration::ZERO,
            used: 0,
        }
    }

    /// The next lease size, adapted to how fast the last one ran out.
    fn next_lease(&mut self, now: Duration) -> u32 {
        let cap = self.limit.map_or(1, |l| l.max_lease());
        if let Some(at) = self.last_grant {
            let lasted = now.saturating_sub(at);
            if lasted <= LEASE_HORIZON {
                self.lease = self.lease.saturating_mul(2);
            } else if lasted > LEASE_HORIZON * 4 {
                self.lease /= 2;
            }
        }
        self.lease = self.lease.clamp(1, cap);
        self.lease
    }

    /// This instance's view for the headers: its own tokens plus the shared room it last saw,
    /// refilled since (other instances may have taken some of it: advisory).
    fn allowed(&self, now: Duration) -> Decision {
        let remaining = self.limit.map_or(0, |l| (self.tokens.saturating_add(l.room(self.tat, now))).min(l.burst()));
        Decision { allowed: true, remaining, reset_after: self.tat.saturating_sub(now), retry_after: Duration::ZERO }
    }
}

/// The per-instance limiter. Keys are tenant ids (tenant routes) or caller ids (routes outside
/// a tenant); times are on the instance's monotonic clock (a [`Duration`] since any origin).
#[derive(Debug)]
pub struct LocalLimiter<K> {
    entries: HashMap<K, Entry>,
    capacity: usize,
    credit: u32,
    clock: u64,
}

impl<K: Hash + Eq + Clone> LocalLimiter<K> {
    /// A limiter for at most `capacity` keys (at least 1), with a credit of 1 request per key.
    pub fn new(capacity: usize) -> Self {
        Self::with_credit(capacity, 1)
    }

    /// A limiter whose keys may each have `credit` requests (at least 1) admitted ahead of their
    /// lease. A credit of `c` tolerates `c - 1` failed lease statements in a row (DSQL conflicts)
    /// before a request waits for its lease; it adds `c` per instance to the bound.
    pub fn with_credit(capacity: usize, credit: u32) -> Self {
        Self { entries: HashMap::new(), capacity: capacity.max(1), credit: credit.max(1), clock: 0 }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The limit last learned for `key` (for `RateLimit-Policy`), if the key is held.
    pub fn limit(&self, key: &K) -> Option<Limit> {
        self.entries.get(key).and_then(|e| e.limit)
    }

    /// What this instance knows of `key` at `now`, for a `RateLimit` header: its limit and the
    /// requests it could still admit (`None` before its first lease).
    pub fn status(&self, key: &K, now: Duration) -> Option<(Limit, Decision)> {
        let e = self.entries.get(key)?;
        Some((e.limit?, e.allowed(now)))
    }

    /// One request of `key` at `now`.
    pub fn admit(&mut self, key: &K, now: Duration) -> Admit {
        let credit = self.credit;
        let e = self.entry(key);
        if now < e.refuse_until {
            return Admit::Refused(Decision {
                allowed: false,
                remaining: 0,
                reset_after: e.tat.saturating_sub(now),
                retry_after: e.refuse_until - now,
            });
        }
        if e.tokens > 0 {
            e.tokens -= 1;
            return Admit::Local(e.allowed(now));
        }
        let lease = e.next_lease(now);
        if e.credit < credit {
            e.credit += 1;
            Admit::NeedLease { want: e.credit + lease }
        } else {
            Admit::LeaseFirst { want: e.credit + lease }
        }
    }

    /// The outcome of a lease statement of `key` sent at `now`, and `limit`, the limit of the
    /// key's plan as the statement reported it. Returns the `RateLimit` values for the request
    /// that carried the statement ([`Admit::NeedLease`]; after [`Admit::LeaseFirst`], call
    /// [`admit`](Self::admit) again instead).
    pub fn record_grant(&mut self, key: &K, outcome: LeaseOutcome, limit: Limit, now: Duration) -> Decision {
        let e = self.entry(key);
        e.limit = Some(limit);
        if let LeaseOutcome::Settled { granted, tat_ahead } = outcome {
            e.tat = now + tat_ahead;
            let paid = granted.min(e.credit);
            e.credit -= paid;
            // Tokens beyond a lease (two leases that crossed) are dropped: under-admission.
            e.tokens = e.tokens.saturating_add(granted - paid).min(limit.max_lease());
            if granted > 0 {
                e.last_grant = Some(now);
            }
            // Out of tokens and the row out of room: refuse locally until the unpaid credit and
            // a lease fit again (asking sooner would write the row for every request at the
            // limit, and lose more races to the other instances).
            let lease = e.lease.clamp(1, limit.max_lease());
            let wait = limit.wait_for(e.tat, now, e.credit + lease);
            e.refuse_until = if e.tokens == 0 { now + wait } else { Duration::ZERO };
        }
        e.allowed(now)
    }

    fn entry(&mut self, key: &K) -> &mut Entry {
        self.clock += 1;
        if !self.entries.contains_key(key) {
            if self.entries.len() >= self.capacity {
                self.evict();
            }
            self.entries.insert(key.clone(), Entry::new());
        }
        let e = self.entries.get_mut(key).expect("present");
        e.used = self.clock;
        e
    }

    /// Drops the least recently used eighth of the keys (at least one).
    fn evict(&mut self) {
        let n = (self.entries.len() / 8).max(1);
        let mut used: Vec<u64> = self.entries.values().map(|e| e.used).collect();
        let (_, cutoff, _) = used.select_nth_unstable(n - 1);
        let cutoff = *cutoff;
        self.entries.retain(|_, e| e.used > cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::grant;

    const MS: Duration = Duration::from_millis(1);

    /// 10 a second, burst 16: leases up to 2.
    fn limit() -> Limit {
        Limit::new(100 * MS, 16).unwrap()
    }

    fn settled(granted: u32, tat_ahead: Duration) -> LeaseOutcome {
        LeaseOutcome::Settled { granted, tat_ahead }
    }

    #[test]
    fn a_first_request_is_served_on_credit_and_its_lease_pays_for_it() {
        let mut l = LocalLimiter::new(10);
        let now = 5_000 * MS;
        assert_eq!(l.admit(&"t", now), Admit::NeedLease { want: 2 });
        // The row granted both: one pays for the request, one is held.
        let d = l.record_grant(&"t", settled(2, 200 * MS), limit(), now);
        assert_eq!((d.allowed, d.remaining, d.reset_after), (true, 15, 200 * MS));
        let Admit::Local(d) = l.admit(&"t", now + MS) else { panic!("a held token is spent locally") };
        assert_eq!(d.remaining, 14);
        // Out of tokens within the horizon: the next lease doubles, up to max_lease = 2.
        assert_eq!(l.admit(&"t", now + 2 * MS), Admit::NeedLease { want: 3 });
        // A second request before that lease comes back: credit is used up.
        assert_eq!(l.admit(&"t", now + 3 * MS), Admit::LeaseFirst { want: 3 });
    }

    #[test]
    fn an_exhausted_budget_is_refused_locally_until_it_has_room() {
        let mut l = LocalLimiter::new(10);
        let now = 1_000 * MS;
        assert_eq!(l.admit(&1, now), Admit::NeedLease { want: 2 });
        // Only the credit was paid: TAT 1,600 ms ahead = full (B·T), the next fits in 100 ms.
        let d = l.record_grant(&1, settled(1, 1_600 * MS), limit(), now);
        assert_eq!((d.remaining, d.reset_after), (0, 1_600 * MS));
        for t in [0, 50, 99] {
            let Admit::Refused(d) = l.admit(&1, now + t * MS) else { panic!("refused locally") };
            assert_eq!(d.retry_after, (100 - t) * MS);
            assert_eq!(d.remaining, 0);
            assert!(!d.allowed);
        }
        assert!(matches!(l.admit(&1, now + 100 * MS), Admit::NeedLease { .. }));
    }

    #[test]
    fn a_failed_statement_keeps_the_debt_and_the_next_request_asks_again() {
        let mut l = LocalLimiter::with_credit(10, 2);
        let now = 1_000 * MS;
        assert_eq!(l.admit(&"k", now), Admit::NeedLease { want: 2 });
        l.record_grant(&"k", LeaseOutcome::Failed, limit(), now);
        // Credit 2: a second request may still go ahead; its lease must pay for both.
        assert_eq!(l.admit(&"k", now + MS), Admit::NeedLease { want: 3 });
        l.record_grant(&"k", LeaseOutcome::Failed, limit(), now + MS);
        assert_eq!(l.admit(&"k", now + 2 * MS), Admit::LeaseFirst { want: 3 });
        // The lease pays the two served requests and leaves one token for this one.
        l.record_grant(&"k", settled(3, 300 * MS), limit(), now + 3 * MS);
        assert!(matches!(l.admit(&"k", now + 3 * MS), Admit::Local(_)));
        assert!(matches!(l.admit(&"k", now + 4 * MS), Admit::NeedLease { .. }));
    }

    #[test]
    fn leases_grow_with_the_rate_and_shrink_when_idle() {
        // Burst 800: max_lease 100.
        let limit = Limit::new(MS, 800).unwrap();
        let mut l = LocalLimiter::new(10);
        let (mut tat, mut sizes) = (Duration::ZERO, vec![]);
        let mut now = Duration::ZERO;
        for _ in 0..2_000 {
            now += MS;
            match l.admit(&0, now) {
                Admit::NeedLease { want } => {
                    sizes.push(want - 1);
                    let g = grant(tat, now, want, limit);
                    tat = g.map_or(tat, |g| g.0);
                    l.record_grant(&0, LeaseOutcome::of_grant(tat, now, g), limit, now);
                }
                Admit::Local(_) => {}
                other => panic!("{other:?}"),
            }
        }
        // 1,000 a second from one instance: 1, 2, 4, ... 64, then 100 each.
        assert_eq!(sizes[..8], [1, 2, 4, 8, 16, 32, 64, 100]);
        assert!(sizes[8..].iter().all(|s| *s == 100));
        // Lease writes: once per request at first, then one per 101 requests (credit + lease).
        assert!(sizes.len() <= 8 + 2_000 / 100, "{}", sizes.len());
        // After 5 quiet seconds the next lease halves.
        let now = now + 5_000 * MS;
        let last = loop {
            match l.admit(&0, now) {
                Admit::Local(_) => {}
                other => break other,
            }
        };
        assert_eq!(last, Admit::NeedLease { want: 1 + 50 });
    }

    #[test]
    fn memory_is_bounded_and_the_least_recently_used_keys_go() {
        let mut l = LocalLimiter::new(16);
        for k in 0..16u32 {
            l.admit(&k, MS);
        }
        // Key 0 used again: 1 is now the least recently used.
        l.admit(&0, 2 * MS);
        l.admit(&100, 3 * MS);
        assert_eq!(l.len(), 15, "one eighth (2) dropped, one added");
        assert!(l.entries.contains_key(&0));
        assert!(!l.entries.contains_key(&1) && !l.entries.contains_key(&2));
        for k in 1000..2000u32 {
            l.admit(&k, 4 * MS);
            assert!(l.len() <= 16);
        }
    }
}
