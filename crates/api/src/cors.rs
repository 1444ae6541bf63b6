//! Cross-origin requests from browsers. With allowed origins configured (`CORS_ALLOW_ORIGINS`),
//! a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from one of them
//! gets 204 with the CORS headers, before any identity is asked for (browsers send preflights
//! without credentials); answers to its real requests carry `Access-Control-Allow-Origin`.
//! Other origins get no CORS headers, so browsers keep their pages out.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};

/// The origins allowed to call the API from a browser. Empty: CORS is off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    origins: Vec<String>,
    any: bool,
}

/// How long a browser may cache a preflight's answer.
const MAX_AGE_SECS: &str = "600";
/// Request headers a browser may send: identity, JSON, retries.
const ALLOW_HEADERS: &str = "authorization, content-type, idempotency-key";
/// Response headers a page may read.
const EXPOSE_HEADERS: &str = "location, retry-after, x-request-id, idempotent-replayed";

impl Cors {
    /// Parses a comma-separated list of origins (`https://app.example.com`,
    /// `http://localhost:5173`), or `*` for any origin.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut cors = Cors::default();
        for origin in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            if origin == "*" {
                cors.any = true;
                continue;
            }
            let (scheme, rest) = origin
                .split_once("://")
                .ok_or_else(|| format!("{origin:?} is not an origin like https://app.example.com"))?;
            if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('/') || rest.contains('?') {
                return Err(format!("{origin:?} is not an origin like https://app.example.com (no path, no slash)"));
            }
            cors.origins.push(origin.to_ascii_lowercase());
        }
        Ok(cors)
    }

    pub fn is_enabled(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// The request's `Origin`, if it is allowed.
    fn allowed<'r>(&self, headers: &'r HeaderMap) -> Option<&'r HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        (self.any || self.origins.iter().any(|o| o.eq_ignore_ascii_case(text))).then_some(origin)
    }

    /// Whether `req` is a preflight this configuration answers.
    pub(crate) fn is_preflight(&self, req: &Request<Bytes>) -> bool {
        self.is_enabled()
            && req.method() == Method::OPTIONS
            && req.headers().contains_key(header::ORIGIN)
            && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The answer to a preflight for a route that answers `methods`.
    pub(crate) fn preflight(&self, req: &Request<Bytes>, methods: &[Method]) -> Response<Bytes> {
        let mut res = Response::new(Bytes::new());
        *res.status_mut() = StatusCode::NO_CONTENT;
        let h = res.headers_mut();
        h.insert(header::VARY, HeaderValue::from_static("origin"));
        if let Some(origin) = self.allowed(req.headers()) {
            let allow = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            if let Ok(v) = HeaderValue::from_str(&allow) {
                h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
            }
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE_SECS));
        }
        res
    }

    /// Adds the CORS headers to the answer to a request from an allowed origin.
    pub(crate) fn decorate(&self, req_headers: &HeaderMap, res: &mut Response<Bytes>) {
        if !self.is_enabled() {
            return;
        }
        let h = res.headers_mut();
        h.insert(header::VARY, HeaderValue::from_static("origin"));
        if let Some(origin) = self.allowed(req_headers) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_when_parsed() {
        let cors = Cors::parse("https://app.example.com, http://localhost:5173").unwrap();
        assert!(cors.is_enabled());
        assert!(!Cors::parse("").unwrap().is_enabled());
        for bad in ["app.example.com", "https://app.example.com/", "ftp://x", "https://"] {
            assert!(Cors::parse(bad).is_err(), "{bad:?}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example.com"));
        assert!(cors.allowed(&headers).is_none());
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://APP.example.com"));
        assert!(cors.allowed(&headers).is_some());
    }
}
