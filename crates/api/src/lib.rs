//! The HTTP application: routing (matchit), identity, validation, handlers and the mapping of
//! errors to responses. It knows `http` types only, no transport: the Lambda adapter and the
//! local dev server both call [`App::handle`] with an `http::Request<Bytes>` whose extensions
//! carry the caller's [`Principal`] and the [`RequestId`].

mod body;
mod cors;
mod error;
mod handlers;
pub mod identity;
mod jwt;
mod ratelimit;
mod respond;
pub mod routes;
mod todo_json;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use serde::Serialize;
use store::{Store, UserId};

pub use cors::Cors;
pub use error::{Error, Result};
pub use identity::{JwtVerifier, Principal, RequestId};
pub use respond::OPENAPI;

/// Request bodies larger than this get 413.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// The route template a request matched (`/api/tenants/{tenant_id}/todos`), in the response's
/// extensions: for metrics, without routing twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchedRoute(pub &'static str);

/// The error code of an error response (`rate_limited`, `quota_exceeded`, ...), in its
/// extensions: for metrics, without parsing the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

/// When the answer to a request is due (set by the entry point, from Lambda's deadline and API
/// Gateway's 30 s limit, less a margin). Database work past it gives up with 503 and
/// `Retry-After`, so the client hears from us rather than from API Gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub Instant);

/// The application: one per process, shared by every request.
#[derive(Debug, Clone)]
pub struct App {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    router: matchit::Router<usize>,
    body_limit: usize,
    cors: Cors,
    /// How long an `Idempotency-Key` answers repeats.
    idempotency_life: Duration,
    /// The issuer whose identities may take over user rows registered before issuers were
    /// recorded (`LEGACY_USER_ISSUER`); none: such rows are never claimed.
    legacy_issuer: Option<String>,
    /// The ids of callers seen by this process, by (issuer, subject), so that only their first
    /// call in this process pays for the registration step. Bounded: cleared when full.
    known_users: Mutex<KnownUsers>,
    /// The per-tenant and per-caller rate limits' instance side.
    limiter: ratelimit::RateLimiter,
}

/// Issuer -> subject -> user id (nested, so that a lookup borrows the caller's strings).
type KnownUsers = HashMap<String, HashMap<String, UserId>>;

const KNOWN_USERS_MAX: usize = 10_000;

impl App {
    pub fn new(store: Store) -> Self {
        Self::with_body_limit(store, DEFAULT_BODY_LIMIT)
    }

    pub fn with_body_limit(store: Store, body_limit: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                router: routes::router(),
                body_limit,
                cors: Cors::default(),
                idempotency_life: store::idempotency::DEFAULT_RECORD_LIFE,
                legacy_issuer: None,
                known_users: Mutex::new(HashMap::new()),
                limiter: ratelimit::RateLimiter::default(),
            }),
        }
    }

    /// Keeps the records of `Idempotency-Key` requests for `life` (24 h by default). Call before
    /// the app is shared.
    pub fn with_idempotency_life(mut self, life: Duration) -> Self {
        Arc::get_mut(&mut self.inner).expect("configured before the app is shared").idempotency_life = life;
        self
    }

    pub(crate) fn idempotency_life(&self) -> Duration {
        self.inner.idempotency_life
    }

    /// Lets identities of `issuer` (as [`Principal::issuer`] writes it: `jwt:<iss>` or
    /// `lambda-authorizer`) take over user rows registered before issuers were recorded, with
    /// their subject: the issuer the deployment trusted then. Without it such rows are never
    /// claimed (an identity of another issuer with the same subject must not get them). Call
    /// before the app is shared.
    pub fn with_legacy_issuer(mut self, issuer: Option<String>) -> Self {
        Arc::get_mut(&mut self.inner).expect("configured before the app is shared").legacy_issuer = issuer;
        self
    }

    pub(crate) fn new_user(&self, principal: &Principal) -> store::NewUser {
        principal.new_user(self.inner.legacy_issuer.as_deref())
    }

    /// Answers browsers from `cors`'s origins (see [`Cors`]). Call before the app is shared.
    pub fn with_cors(mut self, cors: Cors) -> Self {
        Arc::get_mut(&mut self.inner).expect("CORS is configured before the app is shared").cors = cors;
        self
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn limiter(&self) -> &ratelimit::RateLimiter {
        &self.inner.limiter
    }

    pub fn body_limit(&self) -> usize {
        self.inner.body_limit
    }

    /// Answers one request. Never fails: every error is a response with the JSON error shape.
    pub async fn handle(&self, req: Request<Bytes>) -> Response<Bytes> {
        let request_id = match req.extensions().get::<RequestId>() {
            Some(id) => id.0.clone(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let cors = &self.inner.cors;
        let matched = self.inner.router.at(req.uri().path()).ok();
        let route = matched.as_ref().map(|m| routes::ROUTES[*m.value].path);
        let mut res = match handlers::dispatch(self, &req, matched).await {
            Ok(res) => res,
            Err(e) => e.into_response(&request_id),
        };
        if let Some(route) = route {
            res.extensions_mut().insert(MatchedRoute(route));
        }
        cors.decorate(req.headers(), &mut res);
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            res.headers_mut().insert("x-request-id", v);
        }
        res
    }

    /// The caller's user id: remembered from an earlier call, or registered now (one
    /// transaction, on the caller's first call to this process).
    pub(crate) async fn user_id(&self, principal: &Principal, deadline: Option<Instant>) -> Result<UserId> {
        if let Some(id) = self.known(principal) {
            return Ok(id);
        }
        let (id, _) = self.store().register(&self.new_user(principal), deadline).await?;
        self.remember(principal, id);
        Ok(id)
    }

    pub(crate) fn known(&self, principal: &Principal) -> Option<UserId> {
        let map = self.inner.known_users.lock().unwrap_or_else(|e| e.into_inner());
        map.get(principal.issuer.as_str())?.get(principal.subject.as_str()).copied()
    }

    pub(crate) fn remember(&self, principal: &Principal, user: UserId) {
        let mut map = self.inner.known_users.lock().unwrap_or_else(|e| e.into_inner());
        if map.values().map(HashMap::len).sum::<usize>() >= KNOWN_USERS_MAX {
            map.clear();
        }
        map.entry(principal.issuer.clone()).or_default().insert(principal.subject.clone(), user);
    }

    /// The caller's row is gone (deleted, here or through another instance).
    pub(crate) fn forget(&self, principal: &Principal) {
        let mut map = self.inner.known_users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(subjects) = map.get_mut(principal.issuer.as_str()) {
            subjects.remove(principal.subject.as_str());
        }
    }
}

const JSON_BUF_KEEP: usize = 64 * 1024;

/// A JSON response. API responses are per-user data: never cached by intermediaries.
pub(crate) fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<Bytes> {
    json_response_with(status, |buf| serde_json::to_writer(buf, value).expect("our response types always serialise"))
}

/// A JSON response whose body `write` appends to the buffer it is given.
pub(crate) fn json_response_with(status: StatusCode, write: impl FnOnce(&mut Vec<u8>)) -> Response<Bytes> {
    // Serialise into a buffer kept for the thread (built once, not grown step by step for every
    // response), then copy out exactly the bytes written.
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(JSON_BUF_KEEP));
    }
    let body = BUF.with_borrow_mut(|buf| {
        buf.clear();
        write(buf);
        let body = Bytes::copy_from_slice(buf);
        if buf.capacity() > 4 * JSON_BUF_KEEP {
            // An unusually large response: do not keep its memory.
            *buf = Vec::with_capacity(JSON_BUF_KEEP);
        }
        body
    });
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
