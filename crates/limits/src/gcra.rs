//! GCRA, the generic cell rate algorithm, for one key: the whole state is one instant, the
//! theoretical arrival time (TAT).
//!
//! With emission interval `T` (one request's share of time, `1 / rate`) and burst `B`, a request
//! at `now` conforms when, after it, the TAT stays within `now + B·T`:
//!
//! ```text
//! base    = max(tat, now)
//! new_tat = base + n·T          admitted only if new_tat <= now + B·T
//! ```
//!
//! An idle key (`tat <= now`) therefore admits `B` requests at once, then one every `T`. Times
//! are [`Duration`]s since an origin of the caller's choice (the Unix epoch for the shared row,
//! any monotonic origin for an instance): nothing here reads a clock. Arithmetic is exact
//! integer arithmetic on nanoseconds; [`crate::Plan`] makes `T` a whole number of microseconds
//! so that the SQL mirror (in microseconds) computes the same numbers.

use std::time::Duration;

/// A rate and a burst: emission interval `T` (time per request) and burst `B` (requests that
/// an idle key may send at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    interval: Duration,
    burst: u32,
}

impl Limit {
    /// `None` when the interval is zero or the burst is zero.
    pub fn new(interval: Duration, burst: u32) -> Option<Self> {
        (!interval.is_zero() && burst >= 1).then_some(Self { interval, burst })
    }

    /// The emission interval `T`.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The burst `B`.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// `B·T`: how far the TAT may run ahead of now, and the time an idle key takes to refill.
    pub fn tolerance(&self) -> Duration {
        self.interval * self.burst
    }

    /// The largest lease an instance takes of this limit's shared budget: `max(1, B / 8)`.
    pub fn max_lease(&self) -> u32 {
        (self.burst / 8).max(1)
    }

    /// Whole requests that fit at `now` for a key at `tat` (0 ..= B).
    pub fn room(&self, tat: Duration, now: Duration) -> u32 {
        let base = tat.max(now);
        let ceiling = now + self.tolerance();
        let free = ceiling.saturating_sub(base).as_nanos() / self.interval.as_nanos();
        u32::try_from(free).unwrap_or(u32::MAX).min(self.burst)
    }

    /// Up to `n` requests at `now`, as many as fit: the new TAT and how many were taken. The TAT
    /// is returned unchanged when none fit (nothing to write).
    pub fn take(&self, tat: Duration, now: Duration, n: u32) -> (Duration, u32) {
        let taken = n.min(self.room(tat, now));
        if taken == 0 {
            return (tat, 0);
        }
        (tat.max(now) + self.interval * taken, taken)
    }

    /// How long after `now` the next single request fits for a key at `tat` (zero if it does now).
    pub fn wait(&self, tat: Duration, now: Duration) -> Duration {
        self.wait_for(tat, now, 1)
    }

    /// How long after `now` `n` requests (at most B) fit at once for a key at `tat`.
    pub fn wait_for(&self, tat: Duration, now: Duration, n: u32) -> Duration {
        // They fit once max(tat, t) + n·T <= t + B·T, i.e. t >= tat - (B - n)·T.
        let n = n.clamp(1, self.burst);
        tat.saturating_sub(self.interval * (self.burst - n)).saturating_sub(now)
    }
}

/// The answer for one request, and what the rate-limit headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Requests that would still be admitted now, after this one.
    pub remaining: u32,
    /// Until the budget is full again (the TAT minus now).
    pub reset_after: Duration,
    /// When refused: until the next request would be admitted. Zero when allowed.
    pub retry_after: Duration,
}

/// The GCRA state of one key: its theoretical arrival time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gcra {
    tat: Duration,
}

impl Gcra {
    /// A key whose TAT is `tat` (a new key: [`Duration::ZERO`], i.e. idle).
    pub fn new(tat: Duration) -> Self {
        Self { tat }
    }

    /// The theoretical arrival time.
    pub fn tat(&self) -> Duration {
        self.tat
    }

    /// One request at `now`: admitted (and the TAT advanced) if it fits, refused otherwise.
    pub fn check(&mut self, now: Duration, limit: Limit) -> Decision {
        let (tat, taken) = limit.take(self.tat, now, 1);
        self.tat = tat;
        let allowed = taken == 1;
        Decision {
            allowed,
            remaining: limit.room(tat, now),
            reset_after: tat.saturating_sub(now),
            retry_after: if allowed { Duration::ZERO } else { limit.wait(tat, now) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// 10 requests a second (T = 100 ms), burst 3.
    fn limit() -> Limit {
        Limit::new(100 * MS, 3).unwrap()
    }

    #[test]
    fn an_idle_key_admits_the_burst_then_one_per_interval() {
        let mut g = Gcra::default();
        let now = 1000 * MS;
        let d: Vec<_> = (0..4).map(|_| g.check(now, limit())).collect();
        assert_eq!(d.iter().map(|d| d.allowed).collect::<Vec<_>>(), [true, true, true, false]);
        assert_eq!(d.iter().map(|d| d.remaining).collect::<Vec<_>>(), [2, 1, 0, 0]);
        assert_eq!(d[0].reset_after, 100 * MS);
        assert_eq!(d[2].reset_after, 300 * MS);
        assert_eq!(d[2].retry_after, Duration::ZERO);
        // TAT = now + 300 ms; the next one fits at TAT - 2·T = now + 100 ms.
        assert_eq!(d[3].retry_after, 100 * MS);
        assert_eq!(g.tat(), now + 300 * MS);
        // 1 ns too early: refused, 1 ns left to wait; on time: admitted.
        let early = g.check(now + 100 * MS - Duration::from_nanos(1), limit());
        assert!(!early.allowed);
        assert_eq!(early.retry_after, Duration::from_nanos(1));
        let on_time = g.check(now + 100 * MS, limit());
        assert!(on_time.allowed);
        assert_eq!(on_time.remaining, 0);
        assert_eq!(g.tat(), now + 400 * MS);
    }

    #[test]
    fn a_steady_sender_at_the_rate_is_never_refused_and_one_faster_is() {
        let mut g = Gcra::default();
        let at_rate = (0..1000).filter(|i| g.check(100 * MS * *i, limit()).allowed).count();
        assert_eq!(at_rate, 1000);
        let mut g = Gcra::default();
        // Every 50 ms (2x the rate) from 0 to 9.95 s: B + floor(9.95 s / T) = 3 + 99 admitted.
        let fast = (0..200).filter(|i| g.check(50 * MS * *i, limit()).allowed).count();
        assert_eq!(fast, 3 + 99);
    }

    #[test]
    fn take_grants_what_fits_and_leaves_the_tat_alone_when_nothing_does() {
        let l = limit();
        let now = 10_000 * MS;
        assert_eq!(l.take(Duration::ZERO, now, 5), (now + 300 * MS, 3));
        assert_eq!(l.take(now + 150 * MS, now, 5), (now + 250 * MS, 1));
        assert_eq!(l.take(now + 250 * MS, now, 5), (now + 250 * MS, 0));
        assert_eq!(l.room(now + 250 * MS, now), 0);
        assert_eq!(l.wait(now + 250 * MS, now), 50 * MS);
        assert_eq!(l.wait_for(now + 250 * MS, now, 2), 150 * MS);
        assert_eq!(l.wait_for(now + 250 * MS, now, 9), 250 * MS, "n is capped at B");
        assert_eq!(l.room(now - 5000 * MS, now), 3);
    }

    #[test]
    fn limits_need_an_interval_and_a_burst() {
        assert!(Limit::new(Duration::ZERO, 1).is_none());
        assert!(Limit::new(MS, 0).is_none());
        assert_eq!(Limit::new(MS, 7).unwrap().max_lease(), 1);
        assert_eq!(Limit::new(MS, 800).unwrap().max_lease(), 100);
        assert_eq!(limit().tolerance(), 300 * MS);
    }
}
