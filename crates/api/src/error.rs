use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use serde::Serialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way a request can fail. [`Error::into_response`] is the one place where these become
/// status codes and the JSON error shape `{"error": {"code", "message", "request_id"}}`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed: bad JSON, a malformed id in the path, a bad query parameter.
    #[error("{0}")]
    BadRequest(String),
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("your role in this tenant does not allow this")]
    Forbidden,
    #[error("{0}")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed(&'static [Method]),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// A create would take a count past its quota under the tenant's plan (or, for tenants, the
    /// caller's quota under the default plan); nothing was written. The body names the quota,
    /// the plan and the limit.
    #[error("the {plan} plan allows at most {limit} {}", quota.replace('_', " "))]
    QuotaExceeded { quota: &'static str, plan: String, limit: i64 },
    /// The rate limit of the request's budget (its tenant's, or the caller's own) is reached:
    /// 429 with `Retry-After` and the `RateLimit-Policy` / `RateLimit` headers (README: Plans
    /// and limits).
    #[error("too many requests: this budget's rate limit is reached; retry after the time in Retry-After")]
    RateLimited { limit: Option<limits::Limit>, decision: limits::Decision },
    /// A field is well-formed JSON but not an acceptable value.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The database is unavailable. `detail` goes to the log, never to the client.
    #[error("the service is temporarily unavailable; retry later")]
    Unavailable { retry_after: Duration, detail: String },
    /// A bug or an unexpected database error. `detail` goes to the log only.
    #[error("internal error")]
    Internal { detail: String },
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: String,
    request_id: &'a str,
    /// `quota_exceeded` only: which quota, under which plan, and its limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<i64>,
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::QuotaExceeded { .. } => StatusCode::FORBIDDEN,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Unauthorized => "unauthorized",
            Error::Forbidden => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::Conflict(_) => "conflict",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::Invalid { .. } => "invalid_field",
            Error::QuotaExceeded { .. } => "quota_exceeded",
            Error::RateLimited { .. } => "rate_limited",
            Error::Unavailable { .. } => "service_unavailable",
            Error::Internal { .. } => "internal",
        }
    }

    pub fn invalid(e: store::Invalid) -> Self {
        Error::Invalid { field: e.field.to_string(), message: e.message }
    }

    /// A malformed path or query value: the request itself is wrong (400), not a field value.
    pub fn bad_param(e: store::Invalid) -> Self {
        Error::BadRequest(e.to_string())
    }

    /// The response, logging what the client must not see.
    pub fn into_response(self, request_id: &str) -> Response<Bytes> {
        let status = self.status();
        match &self {
            Error::Unavailable { detail, .. } => {
                tracing::warn!(request_id, status = status.as_u16(), error = %detail, "database unavailable")
            }
            Error::Internal { detail } => {
                tracing::error!(request_id, status = status.as_u16(), error = %detail, "internal error")
            }
            _ => {}
        }
        let (quota, plan, limit) = match &self {
            Error::QuotaExceeded { quota, plan, limit } => (Some(*quota), Some(plan.as_str()), Some(*limit)),
            _ => (None, None, None),
        };
        let body =
            Body { error: Inner { code: self.code(), message: self.to_string(), request_id, quota, plan, limit } };
        let mut res = crate::json_response(status, &body);
        res.extensions_mut().insert(crate::ErrorCode(self.code()));
        let headers = res.headers_mut();
        match &self {
            Error::MethodNotAllowed(methods) => {
                let allow = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
                headers
                    .insert(header::ALLOW, HeaderValue::from_str(&allow).expect("method names are valid header text"));
            }
            Error::Unavailable { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
            }
            Error::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Error::RateLimited { limit, decision } => {
                let fields = match limit {
                    Some(limit) => limits::headers::response_headers(*limit, decision),
                    None => limits::headers::retry_after(decision).map(|v| ("Retry-After", v)).into_iter().collect(),
                };
                for (name, value) in fields {
                    if let Ok(value) = HeaderValue::from_str(&value) {
                        headers.insert(name, value);
                    }
                }
            }
            _ => {}
        }
        res
    }
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        if let Some(retry_after) = e.retry_after() {
            return Error::Unavailable { retry_after, detail: e.to_string() };
        }
        match e {
            store::Error::NotFound => Error::NotFound("not found"),
            store::Error::Forbidden => Error::Forbidden,
            store::Error::Conflict(why) => Error::Conflict(why),
            store::Error::QuotaExceeded { quota, plan, limit } => Error::QuotaExceeded { quota, plan, limit },
            store::Error::InvalidValue(why) => Error::Invalid { field: "body".into(), message: why.into() },
            store::Error::IdempotencyMismatch => Error::Invalid {
                field: "Idempotency-Key".into(),
                message: "this key was used for a different request (method, path or body)".into(),
            },
            other => Error::Internal { detail: other.to_string() },
        }
    }
}
