//! Per-request metrics as CloudWatch Embedded Metric Format records: one JSON line per request
//! on stdout, which Lambda sends to CloudWatch Logs and CloudWatch turns into metrics. No API
//! call, no added latency.
//!
//! Metrics: `Latency` (ms), `Requests`, `Errors5xx`, `DbRoundTrips`, `DbConnectFailures`,
//! `Retries`, `Throttled` (429: a rate limit) and `QuotaRefused` (403 `quota_exceeded`); per
//! tenant through the `tenant_id` property (CloudWatch Logs Insights), or the `TenantId`
//! dimension below. Dimension sets: `[Service]` (the function) and `[Service, Route, StatusClass]`;
//! with `METRICS_TENANT_DIMENSION=true` also `[Service, TenantId]`. Each tenant is then a
//! metric of its own, billed per metric and month: off by default. The tenant id is in every
//! record as a property anyway, for CloudWatch Logs Insights.

use std::{
    fmt,
    io::Write,
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};

/// What one request did.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMetrics<'a> {
    /// `GET /api/tenants/{tenant_id}/todos`, or `GET unmatched`.
    pub route: &'a str,
    pub status: u16,
    pub latency_ms: f64,
    pub round_trips: u64,
    pub connect_failures: u64,
    pub retries: u64,
    /// The error code of an error answer (`rate_limited`, `quota_exceeded`, ...).
    pub error_code: Option<&'a str>,
    pub tenant_id: Option<&'a str>,
    pub request_id: &'a str,
}

/// Where the records go: stdout on Lambda, nowhere (but still formatted)
/// in the benchmark.
#[derive(Clone)]
enum Sink {
    Stdout,
    Discard,
}

/// The EMF writer, built once at init.
#[derive(Clone)]
pub struct Metrics {
    namespace: String,
    service: String,
    tenant_dimension: bool,
    sink: Sink,
    /// The `CloudWatchMetrics` member, rendered once: without, and with, the tenant dimension.
    spec_plain: String,
    spec_with_tenant: String,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("namespace", &self.namespace)
            .field("service", &self.service)
            .field("tenant_dimension", &self.tenant_dimension)
            .finish_non_exhaustive()
    }
}

pub const DEFAULT_NAMESPACE: &str = "TenantApi";

impl Metrics {
    pub fn new(namespace: impl Into<String>, service: impl Into<String>, tenant_dimension: bool) -> Self {
        let mut metrics = Self {
            namespace: namespace.into(),
            service: service.into(),
            tenant_dimension,
            sink: Sink::Stdout,
            spec_plain: String::new(),
            spec_with_tenant: String::new(),
        };
        metrics.spec_plain = metrics.spec(false).to_string();
        metrics.spec_with_tenant = metrics.spec(true).to_string();
        metrics
    }

    /// `METRICS_NAMESPACE` (default `TenantApi`), `METRICS_TENANT_DIMENSION` (`true` or
    /// `false`, default `false`); the service is the function's name.
    pub fn from_env(get: &impl Fn(&str) -> Option<String>) -> crate::Result<Self> {
        let namespace = get("METRICS_NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.into());
        let tenant_dimension = match get("METRICS_TENANT_DIMENSION").as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(crate::Error::config(
                    "METRICS_TENANT_DIMENSION",
                    format!("must be true or false, not {other:?}"),
                ));
            }
        };
        let service = get("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| "tenant-api".into());
        Ok(Self::new(namespace, service, tenant_dimension))
    }

    /// A writer that formats every record and drops it (the benchmark: the cost without the
    /// output).
    pub fn discarding(self) -> Self {
        Self { sink: Sink::Discard, ..self }
    }

    /// The `CloudWatchMetrics` member: what CloudWatch extracts, and how.
    fn spec(&self, tenant_dimension: bool) -> Value {
        let mut dimensions = vec![json!(["Service"]), json!(["Service", "Route", "StatusClass"])];
        if tenant_dimension {
            dimensions.push(json!(["Service", "TenantId"]));
        }
        json!([{
            "Namespace": self.namespace,
            "Dimensions": dimensions,
            "Metrics": [
                { "Name": "Latency", "Unit": "Milliseconds" },
                { "Name": "Requests", "Unit": "Count" },
                { "Name": "Errors5xx", "Unit": "Count" },
                { "Name": "DbRoundTrips", "Unit": "Count" },
                { "Name": "DbConnectFailures", "Unit": "Count" },
                { "Name": "Retries", "Unit": "Count" },
                { "Name": "Throttled", "Unit": "Count" },
                { "Name": "QuotaRefused", "Unit": "Count" },
            ],
        }])
    }

    /// The record for one request, parsed ([`Metrics::emit`] writes the same line).
    #[cfg(test)]
    fn record(&self, m: &RequestMetrics<'_>) -> Value {
        let mut line = Vec::new();
        self.render(m, &mut line);
        serde_json::from_slice(&line).expect("the record is JSON")
    }

    /// Writes the record for one request into `out`, without building a JSON tree: it is on
    /// every request's path.
    fn render(&self, m: &RequestMetrics<'_>, out: &mut Vec<u8>) {
        // A tenant becomes a dimension (a metric series of its own) only for requests that it
        // answered: ids made up by callers must not create series.
        let tenant = m.tenant_id.filter(|_| self.tenant_dimension && m.status < 400);
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let spec = if tenant.is_some() { &self.spec_with_tenant } else { &self.spec_plain };
        let string = |out: &mut Vec<u8>, s: &str| {
            serde_json::to_writer(&mut *out, s).expect("a string serialises");
        };
        let _ = write!(out, "{{\"_aws\":{{\"Timestamp\":{timestamp},\"CloudWatchMetrics\":{spec}}},\"Service\":");
        string(out, &self.service);
        out.extend_from_slice(b",\"Route\":");
        string(out, m.route);
        let _ = write!(
            out,
            ",\"StatusClass\":\"{}xx\",\"Latency\":{},\"Requests\":1,\"Errors5xx\":{},\"DbRoundTrips\":{},\
             \"DbConnectFailures\":{},\"Retries\":{},\"Throttled\":{},\"QuotaRefused\":{},\"status\":{},\"request_id\":",
            m.status / 100,
            if m.latency_ms.is_finite() { m.latency_ms } else { 0.0 },
            u8::from(m.status >= 500),
            m.round_trips,
            m.connect_failures,
            m.retries,
            u8::from(m.status == 429),
            u8::from(m.error_code == Some("quota_exceeded")),
            m.status,
        );
        string(out, m.request_id);
        out.extend_from_slice(b",\"tenant_id\":");
        match m.tenant_id {
            Some(t) => string(out, t),
            None => out.extend_from_slice(b"null"),
        }
        if let Some(t) = tenant {
            out.extend_from_slice(b",\"TenantId\":");
            string(out, t);
        }
        out.extend_from_slice(b"}\n");
    }

    /// Writes the record for one request as one line.
    pub fn emit(&self, m: &RequestMetrics<'_>) {
        thread_local! {
            static LINE: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            self.render(m, line);
            match &self.sink {
                Sink::Stdout => {
                    let _ = std::io::stdout().lock().write_all(line);
                }
                Sink::Discard => {
                    std::hint::black_box(&line);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(tenant: Option<&str>) -> RequestMetrics<'_> {
        RequestMetrics {
            route: "GET /api/tenants/{tenant_id}/todos",
            status: 503,
            latency_ms: 12.5,
            round_trips: 1,
            connect_failures: 1,
            retries: 0,
            error_code: None,
            tenant_id: tenant,
            request_id: "r-1",
        }
    }

    #[test]
    fn throttled_and_quota_refused_requests_are_counted() {
        let metrics = Metrics::new("Ns", "fn", false);
        let ok = metrics.record(&RequestMetrics { status: 200, ..sample(Some("t-1")) });
        assert_eq!((ok["Throttled"].as_u64(), ok["QuotaRefused"].as_u64()), (Some(0), Some(0)));
        let limited = RequestMetrics { status: 429, error_code: Some("rate_limited"), ..sample(Some("t-1")) };
        let m = metrics.record(&limited);
        assert_eq!(
            (m["Throttled"].as_u64(), m["QuotaRefused"].as_u64(), m["tenant_id"].as_str()),
            (Some(1), Some(0), Some("t-1"))
        );
        let full = RequestMetrics { status: 403, error_code: Some("quota_exceeded"), ..sample(Some("t-1")) };
        assert_eq!(metrics.record(&full)["QuotaRefused"].as_u64(), Some(1));
        let forbidden = RequestMetrics { status: 403, error_code: Some("forbidden"), ..sample(Some("t-1")) };
        assert_eq!(metrics.record(&forbidden)["QuotaRefused"].as_u64(), Some(0));
    }

    #[test]
    fn a_record_is_embedded_metric_format() {
        let m = Metrics::new("Ns", "fn", false).record(&sample(Some("t-1")));
        let spec = &m["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], "Ns");
        assert_eq!(spec["Dimensions"], json!([["Service"], ["Service", "Route", "StatusClass"]]));
        // Every metric and dimension named in the spec is a member of the record.
        for metric in spec["Metrics"].as_array().unwrap() {
            assert!(m[metric["Name"].as_str().unwrap()].is_number(), "{metric}");
        }
        for d in spec["Dimensions"].as_array().unwrap().iter().flat_map(|d| d.as_array().unwrap()) {
            assert!(m[d.as_str().unwrap()].is_string(), "{d}");
        }
        assert_eq!((m["StatusClass"].as_str(), m["Errors5xx"].as_u64()), (Some("5xx"), Some(1)));
        assert_eq!(m["tenant_id"], "t-1", "the tenant is a property");
        assert!(m.get("TenantId").is_none(), "and no dimension unless asked for");
    }

    #[test]
    fn the_tenant_is_a_dimension_when_configured() {
        let mut ok = sample(Some("t-1"));
        ok.status = 200;
        let m = Metrics::new("Ns", "fn", true).record(&ok);
        assert_eq!(m["_aws"]["CloudWatchMetrics"][0]["Dimensions"][2], json!(["Service", "TenantId"]));
        assert_eq!(m["TenantId"], "t-1");
        let none = Metrics::new("Ns", "fn", true).record(&sample(None));
        assert_eq!(none["_aws"]["CloudWatchMetrics"][0]["Dimensions"].as_array().unwrap().len(), 2);
        let refused = Metrics::new("Ns", "fn", true).record(&sample(Some("made-up")));
        assert!(refused.get("TenantId").is_none(), "a failed request adds no tenant series");
    }
}
