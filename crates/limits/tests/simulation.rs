//! K instances, each with its own [`LocalLimiter`] and clock, sharing one GCRA row through
//! [`grant`] (the database), some of whose lease statements fail (DSQL conflicts). Counts, not
//! timings: every admission is recorded with its (simulated) time and checked against the bound
//! of the crate documentation,
//!
//! ```text
//! admitted in any window of length W  <=  floor(W / T) + B + K · (max_lease + credit)
//! ```

use std::time::Duration;

use limits::{Admit, LeaseOutcome, Limit, LocalLimiter, grant};

/// splitmix64: a small deterministic generator, so that every run sees the same arrivals.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
}

/// One tenant's traffic for the simulation.
struct Tenant {
    key: u32,
    limit: Limit,
    /// Requests a second offered, all instances together.
    offered: u64,
}

#[derive(Default)]
struct Counts {
    /// Admission times (database clock).
    admitted: Vec<Duration>,
    /// 429s, decided locally.
    refused: u64,
    /// 503s: a lease-first statement that failed.
    unavailable: u64,
    /// Lease statements sent, and those that wrote the row.
    statements: u64,
    writes: u64,
    lease_first: u64,
    /// 429s decided after a lease-first statement (the only refusals that cost a round trip).
    refused_after_statement: u64,
    /// Lease statements that failed (simulated conflicts).
    failed: u64,
}

impl std::fmt::Debug for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "admitted {} refused {} (after a statement {}) 503 {} statements {} (failed {}) writes {} lease-first {}",
            self.admitted.len(),
            self.refused,
            self.refused_after_statement,
            self.unavailable,
            self.statements,
            self.failed,
            self.writes,
            self.lease_first
        )
    }
}

struct Sim {
    instances: Vec<(LocalLimiter<u32>, Duration)>,
    shared: Vec<Duration>,
    failure: f64,
    rng: Rng,
}

impl Sim {
    fn new(k: usize, credit: u32, failure: f64, seed: u64, keys: usize) -> Self {
        let mut rng = Rng(seed);
        // Each instance's monotonic clock has its own origin: only durations cross between them.
        let instances = (0..k)
            .map(|_| (LocalLimiter::with_credit(64, credit), Duration::from_millis(rng.below(1 << 40))))
            .collect();
        Self { instances, shared: vec![Duration::ZERO; keys], failure, rng }
    }

    /// The lease statement, at database time `now`: fails at the failure rate, else `grant`.
    fn statement(&mut self, t: &Tenant, i: usize, want: u32, now: Duration, c: &mut Counts) {
        c.statements += 1;
        let outcome = if self.rng.chance(self.failure) {
            c.failed += 1;
            LeaseOutcome::Failed
        } else {
            let tat = self.shared[t.key as usize];
            let g = grant(tat, now, want, t.limit);
            if let Some((new_tat, n)) = g {
                assert!(n <= want);
                self.shared[t.key as usize] = new_tat;
                c.writes += 1;
            }
            LeaseOutcome::of_grant(tat, now, g)
        };
        let (limiter, origin) = &mut self.instances[i];
        limiter.record_grant(&t.key, outcome, t.limit, *origin + now);
    }

    /// One request of tenant `t` on instance `i` at database time `now`.
    fn request(&mut self, t: &Tenant, i: usize, now: Duration, c: &mut Counts) {
        let local = self.instances[i].1 + now;
        match self.instances[i].0.admit(&t.key, local) {
            Admit::Local(d) => {
                assert!(d.allowed);
                c.admitted.push(now);
            }
            Admit::Refused(d) => {
                assert!(!d.allowed && d.retry_after > Duration::ZERO && d.remaining == 0);
                c.refused += 1;
            }
            Admit::NeedLease { want } => {
                c.admitted.push(now);
                self.statement(t, i, want, now, c);
            }
            Admit::LeaseFirst { want } => {
                c.lease_first += 1;
                self.statement(t, i, want, now, c);
                match self.instances[i].0.admit(&t.key, local) {
                    Admit::Local(_) => c.admitted.push(now),
                    Admit::Refused(_) => {
                        c.refused += 1;
                        c.refused_after_statement += 1;
                    }
                    Admit::LeaseFirst { .. } => c.unavailable += 1,
                    Admit::NeedLease { .. } => panic!("credit is not restored by a failed statement"),
                }
            }
        }
    }
}

/// The most admissions in any window of length `w` (windows starting at an admission).
fn max_in_window(times: &[Duration], w: Duration) -> usize {
    let mut end = 0;
    let mut best = 0;
    for start in 0..times.len() {
        while end < times.len() && times[end] <= times[start] + w {
            end += 1;
        }
        best = best.max(end - start);
    }
    best
}

fn bound(limit: Limit, w: Duration, k: usize, credit: u32) -> usize {
    let rate_part = (w.as_nanos() / limit.interval().as_nanos()) as usize;
    rate_part + limit.burst() as usize + k * (limit.max_lease() + credit) as usize
}

/// Runs `tenants` for `window` over `k` instances; each request goes to a random instance at a
/// uniformly random time.
fn run(tenants: &[Tenant], k: usize, credit: u32, failure: f64, seed: u64, window: Duration) -> Vec<Counts> {
    let mut sim = Sim::new(k, credit, failure, seed, tenants.len());
    let mut arrivals = Vec::new();
    for (n, t) in tenants.iter().enumerate() {
        let count = t.offered * window.as_secs();
        for _ in 0..count {
            let at = Duration::from_micros(sim.rng.below(window.as_micros() as u64));
            arrivals.push((at, n, sim.rng.below(k as u64) as usize));
        }
    }
    arrivals.sort();
    let mut counts: Vec<Counts> = tenants.iter().map(|_| Counts::default()).collect();
    // Database time starts well after zero, so that an idle row (TAT 0) is in the past.
    let epoch = Duration::from_secs(1_000_000);
    for (at, n, i) in arrivals {
        sim.request(&tenants[n], i, epoch + at, &mut counts[n]);
    }
    counts
}

#[test]
fn a_tenant_at_ten_times_its_rate_is_admitted_within_the_bound() {
    let window = Duration::from_secs(20);
    // 100 a second, burst 800 (max_lease 100); 20 a second, burst 24 (max_lease 3).
    let limits =
        [Limit::new(Duration::from_millis(10), 800).unwrap(), Limit::new(Duration::from_millis(50), 24).unwrap()];
    let mut runs = 0;
    for limit in limits {
        let rate = 1_000_000_000 / limit.interval().as_nanos() as u64;
        for k in [1, 3, 8] {
            for (credit, failure) in [(1, 0.0), (1, 0.2), (2, 0.2)] {
                for seed in 1..=3 {
                    let noisy = Tenant { key: 0, limit, offered: 10 * rate };
                    let quiet = Tenant { key: 1, limit, offered: rate / 2 };
                    let c = run(&[noisy, quiet], k, credit, failure, seed * 7919 + k as u64, window);
                    let (noisy, quiet) = (&c[0], &c[1]);
                    let ctx = format!("limit {limit:?} k {k} credit {credit} failure {failure} seed {seed}");

                    // The bound, over the whole run and over every 1 s and 5 s window.
                    for w in [window, Duration::from_secs(5), Duration::from_secs(1)] {
                        let most = max_in_window(&noisy.admitted, w);
                        assert!(most <= bound(limit, w, k, credit), "{ctx}: {most} in {w:?}");
                    }
                    // Not far below the budget either: the rate over the window, minus leases held.
                    let floor = (window.as_secs() * rate) as usize - k * limit.max_lease() as usize;
                    let got = noisy.admitted.len();
                    assert!(got as f64 >= 0.9 * floor as f64, "{ctx}: only {got} admitted");
                    // The refused 90% cost no statement: statements are a small share of requests.
                    let offered = (10 * rate * window.as_secs()) as usize;
                    assert_eq!(got + noisy.refused as usize + noisy.unavailable as usize, offered, "{ctx}");
                    // Refused requests cost nothing but the lease-first attempts: a statement that
                    // admits nothing means another instance was granted since this one looked, so
                    // statements stay within (K + 1) per write, failed ones aside.
                    let local = noisy.refused - noisy.refused_after_statement;
                    assert!(local as f64 >= 0.8 * noisy.refused as f64, "{ctx}: {noisy:?}");
                    assert!(noisy.statements <= (k as u64 + 1) * noisy.writes + noisy.failed, "{ctx}: {noisy:?}");
                    if failure == 0.0 {
                        assert_eq!(noisy.unavailable, 0, "{ctx}");
                    }

                    // The quiet tenant, on the same instances, is never refused.
                    assert_eq!(quiet.refused, 0, "{ctx}");
                    assert_eq!(quiet.admitted.len() as u64 + quiet.unavailable, rate / 2 * window.as_secs(), "{ctx}");
                    runs += 1;
                }
            }
        }
    }
    assert_eq!(runs, 2 * 3 * 3 * 3);
}

#[test]
fn a_tenant_under_its_limit_is_never_refused_and_rarely_writes() {
    let window = Duration::from_secs(30);
    let limit = Limit::new(Duration::from_millis(10), 800).unwrap();
    for k in [1, 4, 16] {
        for seed in 1..=3 {
            // 80% of the rate, spread over k instances.
            let t = Tenant { key: 0, limit, offered: 80 };
            let c = &run(&[t], k, 1, 0.0, seed, window)[0];
            assert_eq!(c.refused, 0, "k {k}");
            assert_eq!(c.lease_first, 0, "k {k}: no request waited for its lease");
            assert_eq!(c.admitted.len(), 80 * 30);
            // Leases grow with each instance's own rate (80 / k a second): far fewer writes than
            // requests. With 16 instances each sees 5 a second, and leases of 4 to 8.
            let per_write = c.admitted.len() as f64 / c.writes as f64;
            assert!(per_write >= 3.0, "k {k}: {} writes for {} requests", c.writes, c.admitted.len());
            if k == 1 {
                assert!(per_write >= 50.0, "one busy instance: leases of up to 100: {per_write}");
            }
        }
    }
}

#[test]
fn the_bound_is_tight_enough_to_fail() {
    // A limiter that trusted every instance with a full burst would break the bound; the check
    // above would see it. Here: K instances each running its own GCRA with the whole budget.
    let limit = Limit::new(Duration::from_millis(10), 800).unwrap();
    let k = 8;
    let window = Duration::from_secs(5);
    let mut per_instance = vec![limits::Gcra::default(); k];
    let mut admitted = Vec::new();
    let mut rng = Rng(5);
    let mut times: Vec<Duration> = (0..5_000).map(|_| Duration::from_micros(rng.below(5_000_000))).collect();
    times.sort();
    for (n, at) in times.into_iter().enumerate() {
        if per_instance[n % k].check(at, limit).allowed {
            admitted.push(at);
        }
    }
    assert!(max_in_window(&admitted, window) > bound(limit, window, k, 1));
}
