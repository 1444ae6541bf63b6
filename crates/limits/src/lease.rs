//! The shared side of the cross-instance limiter: a lease of a key's budget, taken from the GCRA
//! state that the database holds per key, and what the instance learns from it.
//!
//! [`grant`] is the whole algorithm of the shared row; the SQL statement in the crate
//! documentation mirrors it line for line (in microseconds, on the database's clock). An instance
//! asks for `n` requests; it gets as many as fit within the burst (possibly fewer than asked:
//! partial leases waste no budget), and when none fit the row is left alone, so that a key over
//! its limit causes no writes at all.

use std::fmt::Write as _;
use std::time::Duration;

use crate::gcra::Limit;
use crate::plan::Plans;

/// One lease taken from the shared state of a key, as the database runs it: with the shared TAT
/// `shared_tat` at `now`, grant up to `n` requests of `limit` (the key's plan's
/// [`Plan::limit`](crate::Plan::limit)). `Some((new_tat, granted))` with `1 <= granted <= n` when
/// at least one fits (write `new_tat`), `None` when none does (write nothing).
pub fn grant(shared_tat: Duration, now: Duration, n: u32, limit: Limit) -> Option<(Duration, u32)> {
    let (new_tat, granted) = limit.take(shared_tat, now, n);
    (granted > 0).then_some((new_tat, granted))
}

/// What the lease statement told the instance, for
/// [`LocalLimiter::record_grant`](crate::LocalLimiter::record_grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The statement ran: `granted` requests (0 when the budget had no room), and how far the
    /// shared TAT is ahead of the database's now after it (zero when it is behind).
    Settled { granted: u32, tat_ahead: Duration },
    /// The statement did not run or did not commit: a conflict (DSQL OC000 / OC001, 40001), a
    /// timeout, a missing row. Nothing was granted; the instance asks again on its next request.
    Failed,
}

impl LeaseOutcome {
    /// From the statement's columns: `granted` and `tat_ahead_us` (the shared TAT minus the
    /// database's now, in microseconds; negative when the key is idle).
    pub fn from_micros(granted: i64, tat_ahead_us: i64) -> Self {
        LeaseOutcome::Settled {
            granted: u32::try_from(granted.max(0)).unwrap_or(u32::MAX),
            tat_ahead: Duration::from_micros(tat_ahead_us.max(0).unsigned_abs()),
        }
    }

    /// The outcome of [`grant`] for a shared TAT that was `shared_tat` at `now`: what a
    /// simulated (or in-process) shared store hands the instance.
    pub fn of_grant(shared_tat: Duration, now: Duration, granted: Option<(Duration, u32)>) -> Self {
        let (tat, granted) = granted.unwrap_or((shared_tat, 0));
        LeaseOutcome::Settled { granted, tat_ahead: tat.saturating_sub(now) }
    }
}

/// The plan catalogue as the rows of a SQL `VALUES` list,
/// `('free', 200000::bigint, 40::bigint), ...`: `(plan, interval_us, burst)`, for the
/// `WITH p (plan, interval_us, burst) AS (VALUES ...)` of the lease statement. The numbers are
/// `bigint` so that `burst * interval_us` cannot overflow an `integer`. Built once at start-up; safe to embed in the statement's text because
/// plan names are `[a-z0-9-]` and the numbers are integers.
pub fn sql_plan_values(plans: &Plans) -> String {
    let mut out = String::new();
    for plan in plans.iter() {
        let limit = plan.limit();
        if !out.is_empty() {
            out.push_str(", ");
        }
        let _ = write!(out, "('{}', {}::bigint, {}::bigint)", plan.name(), limit.interval().as_micros(), limit.burst());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_lease_takes_what_fits_and_nothing_when_nothing_does() {
        // 10 a second, burst 8.
        let limit = Limit::new(100 * MS, 8).unwrap();
        let now = 50_000 * MS;
        // Idle key (TAT in the past): the lease starts from now.
        assert_eq!(grant(Duration::ZERO, now, 3, limit), Some((now + 300 * MS, 3)));
        // TAT 650 ms ahead: room for floor((800 - 650) / 100) = 1 of the 3 asked.
        assert_eq!(grant(now + 650 * MS, now, 3, limit), Some((now + 750 * MS, 1)));
        // 701 ms ahead: no room; the caller writes nothing.
        assert_eq!(grant(now + 701 * MS, now, 3, limit), None);
        // 100 ms later the same row has room for one again.
        assert_eq!(grant(now + 701 * MS, now + 100 * MS, 3, limit), Some((now + 801 * MS, 1)));
    }

    #[test]
    fn leases_never_exceed_the_budget() {
        // Asking in leases of 1 to 7 at arbitrary times grants exactly what one GCRA would.
        let limit = Limit::new(100 * MS, 8).unwrap();
        let (mut tat, mut granted) = (Duration::ZERO, 0u32);
        for i in 0..1000u32 {
            let now = MS * (i * 40 + i * 37 % 40);
            if let Some((t, g)) = grant(tat, now, i % 7 + 1, limit) {
                assert!(t <= now + limit.tolerance());
                tat = t;
                granted += g;
            }
        }
        let end = MS * (999 * 40 + 999 * 37 % 40);
        // Over [0, end]: at most B + end / T.
        assert!(granted as u128 <= 8 + end.as_nanos() / limit.interval().as_nanos(), "{granted}");
        assert!(granted >= 390, "{granted}");
    }

    #[test]
    fn the_statement_in_the_crate_docs_computes_the_same() {
        // Recorded from that statement on PostgreSQL 15 for a `free` row (T = 200 ms, B = 40):
        // idle, want 3 -> granted 3, tat_ahead 600000 µs; 2,014 µs later, want 100 -> granted
        // 37, tat_ahead 7997986 µs; then want 1 -> no row.
        let free = crate::Plans::builtin().get("free").unwrap().limit();
        let us = Duration::from_micros;
        let t0 = us(1_764_000_000_000_000);
        let (tat, granted) = grant(Duration::ZERO, t0, 3, free).unwrap();
        assert_eq!((tat - t0, granted), (us(600_000), 3));
        let t1 = t0 + us(2_014);
        let (tat, granted) = grant(tat, t1, 100, free).unwrap();
        assert_eq!((tat - t1, granted), (us(7_997_986), 37));
        assert_eq!(grant(tat, t1 + us(1_881), 1, free), None);
    }

    #[test]
    fn outcomes_from_the_statement() {
        assert_eq!(
            LeaseOutcome::from_micros(3, 1_500),
            LeaseOutcome::Settled { granted: 3, tat_ahead: Duration::from_micros(1_500) }
        );
        assert_eq!(LeaseOutcome::from_micros(-1, -7), LeaseOutcome::Settled { granted: 0, tat_ahead: Duration::ZERO });
        let now = 10 * MS;
        assert_eq!(LeaseOutcome::of_grant(now + MS, now, None), LeaseOutcome::Settled { granted: 0, tat_ahead: MS });
        assert_eq!(
            LeaseOutcome::of_grant(now, now, Some((now + 5 * MS, 2))),
            LeaseOutcome::Settled { granted: 2, tat_ahead: 5 * MS }
        );
    }

    #[test]
    fn plan_values_for_the_statement() {
        assert_eq!(
            sql_plan_values(&Plans::builtin()),
            "('free', 200000::bigint, 40::bigint), ('premium', 5000::bigint, 1600::bigint), \
             ('standard', 20000::bigint, 400::bigint)"
        );
    }
}
