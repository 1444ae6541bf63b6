//! Per-tenant and per-caller rate limits (issue 24) in the request path: the instance's
//! [`LocalLimiter`] (crate `limits`) decides each request, the store carries its leases of the
//! shared budget (`store::lease`), and the answers carry the `RateLimit-Policy` / `RateLimit`
//! headers of draft-ietf-httpapi-ratelimit-headers-09 (`limits::headers`), a refusal 429 with
//! `Retry-After` too.
//!
//! Whose budget: a tenant route spends the tenant's, but only for a caller this instance has
//! seen answered as a member of it (a 2xx or a 403 on one of its routes); anyone else's request
//! spends the caller's own budget, so that naming a tenant in a path cannot exhaust it. Routes
//! outside a tenant spend the caller's own budget, under the default plan's rate.

use std::{
    collections::HashSet,
    sync::Mutex,
    time::{Duration, Instant},
};

use limits::{Admit, Decision, LeaseOutcome, Limit, LocalLimiter};
use store::{
    TenantId, UserId,
    lease::{LeaseState, Leased, RateKey},
};

/// Keys an instance keeps (tenants and callers it served within the last moments).
const KEYS: usize = 10_000;
/// Requests a key may have admitted ahead of its lease, per instance: 2 tolerates one failed
/// lease statement (a DSQL conflict) before a request must wait for its lease; it adds 2 per
/// instance to the bound (crates/limits).
const CREDIT: u32 = 2;
/// Memberships an instance remembers; cleared when full.
const MEMBERS: usize = 10_000;

/// What the limiter says of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Serve it; the lease to carry, if any (`want` requests of `key`).
    Serve { key: RateKey, lease: Option<u32>, decision: Option<Decision> },
    /// Send the lease alone first, then ask again.
    LeaseFirst { key: RateKey, want: u32 },
    /// Refuse it (429), with the key's limit and the decision.
    Refuse { limit: Option<Limit>, decision: Decision },
}

/// The instance's rate limiter.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limiter: Mutex<LocalLimiter<RateKey>>,
    members: Mutex<HashSet<(UserId, TenantId)>>,
    origin: Instant,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self {
            limiter: Mutex::new(LocalLimiter::with_credit(KEYS, CREDIT)),
            members: Mutex::default(),
            origin: Instant::now(),
        }
    }
}

impl RateLimiter {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The budget `me`'s request spends: `tenant`'s when `me` is known as its member.
    pub(crate) fn key(&self, me: UserId, tenant: Option<TenantId>) -> RateKey {
        match tenant {
            Some(t) if self.members.lock().expect("members").contains(&(me, t)) => RateKey::Tenant(t),
            _ => RateKey::Caller(me),
        }
    }

    /// `me` was answered as a member of `tenant`: its later requests spend the tenant's budget.
    pub(crate) fn member(&self, me: UserId, tenant: TenantId) {
        let mut members = self.members.lock().expect("members");
        if members.len() >= MEMBERS {
            members.clear();
        }
        members.insert((me, tenant));
    }

    /// `me` was answered 404 on `tenant`'s route: not (or no longer) a member.
    pub(crate) fn not_member(&self, me: UserId, tenant: TenantId) {
        self.members.lock().expect("members").remove(&(me, tenant));
    }

    /// One request of `key`.
    pub(crate) fn admit(&self, key: RateKey) -> Verdict {
        let mut limiter = self.limiter.lock().expect("limiter");
        match limiter.admit(&key, self.now()) {
            Admit::Local(d) => Verdict::Serve { key, lease: None, decision: Some(d) },
            Admit::NeedLease { want } => Verdict::Serve { key, lease: Some(want), decision: None },
            Admit::LeaseFirst { want } => Verdict::LeaseFirst { key, want },
            Admit::Refused(decision) => Verdict::Refuse { limit: limiter.limit(&key), decision },
        }
    }

    /// The end of a lease of `key` (sent with the request, or alone): its limit and the
    /// decision to report, when the statement answered.
    pub(crate) fn record(&self, key: RateKey, state: LeaseState) -> Option<(Limit, Decision)> {
        let now = self.now();
        let mut limiter = self.limiter.lock().expect("limiter");
        let leased = match state {
            LeaseState::Answered(Some(leased)) => leased,
            // Failed or never sent: the credit stays unpaid, and the next lease pays it.
            _ => {
                let limit = limiter.limit(&key)?;
                return Some((limit, limiter.record_grant(&key, LeaseOutcome::Failed, limit, now)));
            }
        };
        let limit = limit_of(&leased)?;
        let outcome = LeaseOutcome::from_micros(leased.granted, leased.tat_ahead_us);
        Some((limit, limiter.record_grant(&key, outcome, limit, now)))
    }

    /// What this instance knows of `key` now, for the `RateLimit` header.
    pub(crate) fn status(&self, key: RateKey) -> Option<(Limit, Decision)> {
        self.limiter.lock().expect("limiter").status(&key, self.now())
    }
}

/// The limit a lease statement reported (the key's plan's), if it is a valid one.
fn limit_of(leased: &Leased) -> Option<Limit> {
    let interval = Duration::from_micros(u64::try_from(leased.interval_us).ok()?);
    Limit::new(interval, u32::try_from(leased.burst).ok()?)
}

/// A request the limiter admitted: its key, the lease it carries, and what it knew already.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub key: RateKey,
    pub slot: store::lease::LeaseSlot,
    known: Option<(Limit, Decision)>,
}

/// Lease statements sent alone for one request before it is refused: each failed (on DSQL,
/// another instance's lease of the same key committed first).
const LEASE_FIRST_ATTEMPTS: usize = 3;

/// Admits one request of `me` (on `tenant`'s route, if any), or refuses it with
/// [`Error::RateLimited`](crate::Error::RateLimited): at once, with no database work, when the
/// instance knows the key is over its budget; or after its lease, sent alone because the key's
/// credit is used up, failed [`LEASE_FIRST_ATTEMPTS`] times. Those failures are contention on
/// the key's own budget (its requests on other instances leasing at the same moment), so the
/// answer is 429 with `Retry-After: 1`, not 503: the service is fine, the key is busy.
pub(crate) async fn admit(
    app: &crate::App,
    me: UserId,
    tenant: Option<TenantId>,
    deadline: Option<Instant>,
) -> crate::Result<Admitted> {
    let limiter = app.limiter();
    let key = limiter.key(me, tenant);
    for _ in 0..LEASE_FIRST_ATTEMPTS {
        match limiter.admit(key) {
            Verdict::Serve { lease: Some(want), .. } => {
                return Ok(Admitted { key, slot: store::lease::LeaseSlot::ask(key, want), known: None });
            }
            Verdict::Serve { decision, .. } => {
                let known = limiter.status(key).map(|(limit, _)| limit).zip(decision);
                return Ok(Admitted { key, slot: store::lease::LeaseSlot::default(), known });
            }
            Verdict::Refuse { limit, decision } => return Err(crate::Error::RateLimited { limit, decision }),
            Verdict::LeaseFirst { key, want } => {
                let slot = store::lease::LeaseSlot::ask(key, want);
                let sent = app.store().scoped(me).with_deadline(deadline).lease(&slot).await;
                let state = if sent.is_ok() { slot.state() } else { LeaseState::Answered(None) };
                limiter.record(key, state);
            }
        }
    }
    let busy = Duration::from_secs(1);
    let decision = Decision { allowed: false, remaining: 0, reset_after: busy, retry_after: busy };
    Err(crate::Error::RateLimited { limit: limiter.status(key).map(|(limit, _)| limit), decision })
}

/// After the request: learns a membership from its answer, records the end of its lease, and
/// gives the answer the `RateLimit-Policy` and `RateLimit` headers.
pub(crate) fn finish(
    app: &crate::App,
    admitted: Admitted,
    me: UserId,
    tenant: Option<TenantId>,
    result: &mut crate::Result<http::Response<bytes::Bytes>>,
) {
    let limiter = app.limiter();
    // A 2xx or a 403 on a tenant's route says the caller is its member; a 404, that they are
    // not (or no longer).
    let status = result.as_ref().map_or_else(|e| e.status(), |r| r.status());
    if let Some(t) = tenant {
        match status {
            s if s.is_success() || s == http::StatusCode::FORBIDDEN => limiter.member(me, t),
            http::StatusCode::NOT_FOUND => limiter.not_member(me, t),
            _ => {}
        }
    }
    let key = admitted.key;
    let known = match admitted.slot.state() {
        LeaseState::None => admitted.known,
        LeaseState::Answered(leased) => limiter.record(key, LeaseState::Answered(leased)),
        // No transaction of the request reached the control database (it was refused before
        // any, or its tenant's todos live in a dedicated database): the lease was not sent, its
        // credit stays unpaid, and the key's next request sends it (alone, if the credit is
        // used up). So a request that never reaches the database never costs a round trip.
        LeaseState::Unsent(..) => limiter.record(key, LeaseState::Answered(None)),
    };
    if let (Ok(res), Some((limit, decision))) = (result, known) {
        for (name, value) in limits::headers::response_headers(limit, &decision) {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                res.headers_mut().insert(name, value);
            }
        }
    }
}
