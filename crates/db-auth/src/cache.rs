//! The token cache: a token per (kind, host, port, user, region), reused until a margin before
//! it or its credentials expire. New connections are frequent on Lambda (every cold start,
//! every reconnect) and Aurora accepts only about 200 new IAM connections per second, so a
//! token is signed once and shared; concurrent callers wait for that one signing.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use crate::{Error, Result, TokenRequest, sign};

/// A token is replaced this long before it (or its credentials) expire, so that a connection
/// never starts a login with a token about to lapse.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Where the cache reads the time: the system clock, or a [`ManualClock`] in tests.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> SystemTime;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
#[cfg(any(test, feature = "test-util"))]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

#[cfg(any(test, feature = "test-util"))]
impl ManualClock {
    pub fn new(start: SystemTime) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Cached {
    token: Arc<str>,
    /// Sign anew from this moment on.
    refresh_at: SystemTime,
}

/// One key's token, and a flag that a rejection sets without waiting for the lock (a signing or
/// a read may hold it at that moment).
#[derive(Default)]
struct SlotState {
    cached: tokio::sync::Mutex<Option<Cached>>,
    rejected: std::sync::atomic::AtomicBool,
}

type Slot = Arc<SlotState>;

pub struct TokenCache {
    provider: SharedCredentialsProvider,
    clock: Arc<dyn Clock>,
    margin: Duration,
    slots: Mutex<HashMap<TokenRequest, Slot>>,
    signings: AtomicU64,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("margin", &self.margin)
            .field("signings", &self.signings())
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    pub fn new(provider: SharedCredentialsProvider) -> Self {
        Self::with_clock(provider, Arc::new(SystemClock), DEFAULT_MARGIN)
    }

    pub fn with_clock(provider: SharedCredentialsProvider, clock: Arc<dyn Clock>, margin: Duration) -> Self {
        Self { provider, clock, margin, slots: Mutex::new(HashMap::new()), signings: AtomicU64::new(0) }
    }

    fn slot(&self, req: &TokenRequest) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(req) {
            return slot.clone();
        }
        slots.entry(req.clone()).or_default().clone()
    }

    /// The current token for `req`: the cached one while it is fresh, else a new signing that
    /// concurrent callers for the same key share.
    pub async fn token(&self, req: &TokenRequest) -> Result<Arc<str>> {
        let slot = self.slot(req);
        let mut cached = slot.cached.lock().await;
        if slot.rejected.swap(false, Ordering::AcqRel) {
            *cached = None;
        }
        let now = self.clock.now();
        if let Some(c) = cached.as_ref()
            && now < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let creds = self.provider.provide_credentials().await.map_err(|e| Error::Credentials(e.to_string()))?;
        let token: Arc<str> = sign(req, &creds, now)?.into();
        self.signings.fetch_add(1, Ordering::Relaxed);
        let margin = self.margin.min(req.expires_in / 2);
        let mut refresh_at = now + req.expires_in - margin;
        if let Some(expiry) = creds.expiry() {
            refresh_at = refresh_at.min(expiry.checked_sub(margin).unwrap_or(now));
        }
        tracing::debug!(host = %req.host, user = %req.user, kind = ?req.kind, "signed a new database auth token");
        *cached = Some(Cached { token: token.clone(), refresh_at });
        Ok(token)
    }

    /// Forgets the token for `req` (the server rejected it): the next caller signs anew.
    pub fn invalidate(&self, req: &TokenRequest) {
        if let Some(slot) = self.slots.lock().unwrap_or_else(|e| e.into_inner()).get(req) {
            slot.rejected.store(true, Ordering::Release);
        }
    }

    /// Tokens signed so far (for tests and the benchmark).
    pub fn signings(&self) -> u64 {
        self.signings.load(Ordering::Relaxed)
    }
}
