//! The Lambda entry point: turns API Gateway events (HTTP API payload 2.0, REST payload 1.0)
//! into requests for the shared `api::App` and its responses back into API Gateway's.
//!
//! Everything that needs no network lives here so that tests and the benchmark can call
//! [`Function::handle`] in-process; `src/main.rs` is init plus `lambda_http::run`.
//!
//! - Init reads the configuration once (a missing or malformed variable is an init error that
//!   names it) and builds the store without connecting: a paused database delays the first
//!   request (within the connect timeout), never init.
//! - HTTP-level failures are responses, never invocation errors; a panic while handling one
//!   request becomes a 500 for that request only.
//! - The Lambda request id is the request id in logs and error bodies.

mod error;
pub mod event;
pub mod identity;
pub mod invocation;
pub mod metrics;
pub mod migration;

use std::{
    panic::AssertUnwindSafe,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use api::{App, Cors, Deadline, RequestId};
use bytes::Bytes;
use futures_util::FutureExt;
use lambda_http::{Body, RequestExt, request::RequestContext};
use store::{DbConfig, Store};

pub use error::{Error, Result};
pub use identity::{Identity, Source};
pub use metrics::{Metrics, RequestMetrics};
pub use migration::{AppFunction, MigrateEvent, Migrator};

/// API Gateway HTTP APIs stop waiting for an integration after 30 s (a hard limit).
pub const API_GATEWAY_LIMIT: Duration = Duration::from_secs(30);
/// What a request's deadline keeps back for answering: the response must reach API Gateway
/// before it gives up. `REQUEST_DEADLINE_MARGIN_MS` changes it.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_millis(1000);

/// The function: the app and the identity rules, built once per Lambda instance.
#[derive(Debug, Clone)]
pub struct Function {
    app: App,
    identity: Identity,
    deadline_margin: Duration,
    metrics: Metrics,
}

impl Function {
    pub fn new(app: App, identity: Identity) -> Self {
        // In-process users (tests, the benchmark) choose where metrics go; init (`from_env`)
        // writes them to stdout, for CloudWatch.
        let metrics = Metrics::new(metrics::DEFAULT_NAMESPACE, "tenant-api", false).discarding();
        Self { app, identity, deadline_margin: DEFAULT_DEADLINE_MARGIN, metrics }
    }

    /// Where the per-request metrics go (see [`Metrics`]).
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        Self { metrics, ..self }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Keeps `margin` of each request's time back for answering.
    pub fn with_deadline_margin(self, margin: Duration) -> Self {
        Self { deadline_margin: margin, ..self }
    }

    /// When the answer to an invocation that started at `started` is due: the earlier of
    /// Lambda's deadline for it (its `deadline`, milliseconds since the epoch; 0 when unknown)
    /// and API Gateway's 30 s, less the margin.
    pub fn deadline(&self, started: Instant, lambda_deadline_ms: u64) -> Instant {
        let gateway = started + API_GATEWAY_LIMIT;
        let lambda = (lambda_deadline_ms > 0).then(|| {
            let due = UNIX_EPOCH + Duration::from_millis(lambda_deadline_ms);
            let left = due.duration_since(SystemTime::now()).unwrap_or_default();
            Instant::now() + left
        });
        lambda.map_or(gateway, |l| l.min(gateway)).checked_sub(self.deadline_margin).unwrap_or(started)
    }

    /// Init: the database settings (`DB_*`, see `.env.example`), credentials and the token
    /// cache for IAM auth, the pool (not connected), and the identity settings.
    pub async fn from_env(get: &impl Fn(&str) -> Option<String>) -> Result<Self> {
        let db = DbConfig::from_env(get)?;
        let identity = Identity::from_env(get)?;
        let cors = Cors::parse(&get("CORS_ALLOW_ORIGINS").unwrap_or_default())
            .map_err(|e| Error::config("CORS_ALLOW_ORIGINS", e))?;
        let margin = match bounded(get, "REQUEST_DEADLINE_MARGIN_MS", 0..=20_000)? {
            Some(ms) => Duration::from_millis(ms),
            None => DEFAULT_DEADLINE_MARGIN,
        };
        if identity.is_closed() {
            tracing::warn!("IDENTITY_SOURCES is empty: every /api request will get 401 (closed by default)");
        }
        tracing::info!(db = %db.describe(), auth = ?db.auth, pool_max = db.pool_max, "init");
        let metrics = Metrics::from_env(get)?;
        let records = match bounded(get, "IDEMPOTENCY_TTL_SECS", 60..=604_800)? {
            Some(secs) => Duration::from_secs(secs),
            None => store::idempotency::DEFAULT_RECORD_LIFE,
        };
        let plans = limits::Plans::from_config(get(limits::PLANS_ENV).as_deref())
            .map_err(|e| Error::config("PLANS", e.to_string()))?;
        let store = Store::from_config(db).await?.with_plans(&plans);
        // Who may claim user rows from before issuers were recorded (none by default).
        let legacy = get("LEGACY_USER_ISSUER").map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let app = App::new(store).with_cors(cors).with_idempotency_life(records).with_legacy_issuer(legacy);
        Ok(Self::new(app, identity).with_deadline_margin(margin).with_metrics(metrics))
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// Answers one API Gateway event. Never fails: errors, even panics, are HTTP responses.
    pub async fn handle(&self, event: lambda_http::Request) -> lambda_http::Response<Body> {
        let started = Instant::now();
        let request_id = event.lambda_context_ref().map(|c| c.request_id.clone()).unwrap_or_default();
        let deadline = self.deadline(started, event.lambda_context_ref().map_or(0, |c| c.deadline));
        let (method, path) = (event.method().clone(), app_path(&event));
        let before = self.app.store().stats();
        let res = match self.to_app_request(event, &path, &request_id) {
            Ok(mut req) => {
                req.extensions_mut().insert(Deadline(deadline));
                contain_panics(&request_id, self.app.handle(req)).await
            }
            Err(e) => e.into_response(&request_id),
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let tenant_id = api::routes::tenant_in_path(&path);
        tracing::info!(request_id, method = %method, path, tenant_id, status = res.status().as_u16(), latency_ms, "request");
        let after = self.app.store().stats();
        let route = format!("{method} {}", res.extensions().get::<api::MatchedRoute>().map_or("unmatched", |r| r.0));
        self.metrics.emit(&RequestMetrics {
            route: &route,
            status: res.status().as_u16(),
            latency_ms,
            round_trips: after.round_trips - before.round_trips,
            connect_failures: after.connect_failures - before.connect_failures,
            retries: after.retries - before.retries,
            error_code: res.extensions().get::<api::ErrorCode>().map(|c| c.0),
            tenant_id,
            request_id: &request_id,
        });
        to_lambda_response(res)
    }

    /// The app's request: the path without the stage, the query, headers, body, and in the
    /// extensions the caller (from the configured identity sources) and the request id.
    fn to_app_request(
        &self,
        event: lambda_http::Request,
        path: &str,
        request_id: &str,
    ) -> api::Result<http::Request<Bytes>> {
        let principal = self.identity.principal(&event);
        let uri = match event.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        let (parts, body) = event.into_parts();
        let body = match body {
            Body::Empty => Bytes::new(),
            Body::Text(s) => Bytes::from(s),
            Body::Binary(b) => Bytes::from(b),
            _ => Bytes::new(),
        };
        let mut req = http::Request::new(body);
        *req.method_mut() = parts.method;
        *req.uri_mut() =
            uri.parse().map_err(|_| api::Error::BadRequest("the request path is not a valid URI".into()))?;
        *req.headers_mut() = parts.headers;
        if let Some(p) = principal {
            req.extensions_mut().insert(p);
        }
        req.extensions_mut().insert(RequestId(request_id.to_string()));
        Ok(req)
    }
}

/// The whole number in `var`, if set, within `range`; otherwise an error that names it.
fn bounded(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>> {
    let Some(v) = get(var) else { return Ok(None) };
    match v.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(Error::config(var, format!("must be {} to {}, not {v:?}", range.start(), range.end()))),
    }
}

/// Runs `handling`; a panic inside it becomes a 500 for this request alone (logged with its
/// message, which the body does not carry). The store discards a connection that a panicking
/// request left mid-transaction, so the next request starts clean.
pub async fn contain_panics(
    request_id: &str,
    handling: impl std::future::Future<Output = http::Response<Bytes>>,
) -> http::Response<Bytes> {
    match AssertUnwindSafe(handling).catch_unwind().await {
        Ok(res) => res,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            api::Error::Internal { detail: format!("panic while handling the request: {detail}") }
                .into_response(request_id)
        }
    }
}

/// The path the app routes on: API Gateway's raw path without a named stage's prefix (REST
/// APIs and HTTP API named stages put `/stage` in front; the `$default` stage does not).
fn app_path(event: &lambda_http::Request) -> String {
    let raw = event.raw_http_path();
    let stage = match event.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.stage.as_deref(),
        Some(RequestContext::ApiGatewayV1(c)) => c.stage.as_deref(),
        _ => None,
    };
    let path = match stage {
        Some(stage) if stage != "$default" => match raw.strip_prefix('/').and_then(|r| r.strip_prefix(stage)) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
            _ => raw,
        },
        _ => raw,
    };
    if path.is_empty() { "/".to_string() } else { path.to_string() }
}

/// JSON is text: API Gateway gets it as is, not base64.
pub fn to_lambda_response(res: http::Response<Bytes>) -> lambda_http::Response<Body> {
    let (parts, body) = res.into_parts();
    let body = if body.is_empty() {
        Body::Empty
    } else {
        // Bytes -> Vec<u8> reuses the buffer when it is not shared (it is not, here).
        match String::from_utf8(Vec::from(body)) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    lambda_http::Response::from_parts(parts, body)
}

/// The log filter for `LOG_LEVEL` (a level, or a filter like `store=debug,info`), with the
/// targets that could log secrets capped at `info` (see `db_auth::QUIET_LOG_TARGETS`).
pub fn log_filter(level: &str) -> Result<tracing_subscriber::EnvFilter> {
    tracing_subscriber::EnvFilter::try_new(db_auth::log_directives(level))
        .map_err(|e| Error::config("LOG_LEVEL", format!("is not a level or filter ({level:?}): {e}")))
}

/// JSON logs for CloudWatch, filtered by `LOG_LEVEL` (default `info`).
pub fn init_tracing(level: Option<&str>) -> Result<()> {
    let (filter, result) = match log_filter(level.unwrap_or("info")) {
        Ok(f) => (f, Ok(())),
        Err(e) => (log_filter("info").expect("the default filter is valid"), Err(e)),
    };
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .with_current_span(false)
        .without_time()
        .try_init();
    result
}

/// Tells Lambda that init failed, and why (it shows the message as the init error).
pub async fn report_init_error(error: &Error) {
    tracing::error!(error = %error, "init failed");
    let body = serde_json::json!({ "errorType": "Runtime.ConfigError", "errorMessage": error.to_string() });
    let request = lambda_runtime_api_client::build_request()
        .method(http::Method::POST)
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", "Runtime.ConfigError")
        .body(lambda_runtime_api_client::body::Body::from(body.to_string()));
    let sent = match (lambda_runtime_api_client::Client::builder().build(), request) {
        (Ok(client), Ok(request)) => client.call(request).await.map(drop),
        (Err(e), _) => Err(e.into()),
        (_, Err(e)) => Err(e.into()),
    };
    if let Err(e) = sent {
        tracing::error!(error = %e, "could not report the init error to the Runtime API");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_a_500_for_that_request_only() {
        let res = contain_panics("req-1", async { panic!("secret internals") }).await;
        assert_eq!(res.status(), 500);
        let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["request_id"], "req-1");
        assert!(!body.to_string().contains("secret internals"), "no panic text in the body");
        let ok = contain_panics("req-2", async { http::Response::new(Bytes::from_static(b"fine")) }).await;
        assert_eq!(ok.status(), 200);
    }
}
