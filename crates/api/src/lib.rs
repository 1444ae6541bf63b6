//! The HTTP application: routing (matchit), identity, validation, handlers and the mapping of
//! errors to responses. It knows `http` types only, no transport: the Lambda adapter and the
//! local dev server both call [`App::handle`] with an `http::Request<Bytes>` whose extensions
//! carry the caller's [`Principal`] and the [`RequestId`].

mod body;
mod error;
mod handlers;
pub mod identity;
pub mod routes;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use serde::Serialize;
use store::{Store, UserId};

pub use error::{Error, Result};
pub use handlers::OPENAPI;
pub use identity::{JwtVerifier, Principal, RequestId};

/// Request bodies larger than this get 413.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

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
    /// Users whose row is known to exist, so that only their first call in this process pays
    /// for the registration check. Bounded: cleared when full.
    known_users: Mutex<HashSet<UserId>>,
}

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
                known_users: Mutex::new(HashSet::new()),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
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
        let mut res = match handlers::dispatch(self, &req).await {
            Ok(res) => res,
            Err(e) => e.into_response(&request_id),
        };
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            res.headers_mut().insert("x-request-id", v);
        }
        res
    }

    pub(crate) fn is_known(&self, user: UserId) -> bool {
        self.inner.known_users.lock().unwrap_or_else(|e| e.into_inner()).contains(&user)
    }

    pub(crate) fn set_known(&self, user: UserId, known: bool) {
        let mut set = self.inner.known_users.lock().unwrap_or_else(|e| e.into_inner());
        if !known {
            set.remove(&user);
            return;
        }
        if set.len() >= KNOWN_USERS_MAX {
            set.clear();
        }
        set.insert(user);
    }
}

const JSON_BUF_KEEP: usize = 64 * 1024;

/// A JSON response. API responses are per-user data: never cached by intermediaries.
pub(crate) fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<Bytes> {
    // Serialise into a buffer kept for the thread (built once, not grown step by step for every
    // response), then copy out exactly the bytes written.
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(JSON_BUF_KEEP));
    }
    let body = BUF.with_borrow_mut(|buf| {
        buf.clear();
        serde_json::to_writer(&mut *buf, value).expect("our response types always serialise");
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
