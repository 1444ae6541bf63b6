//! Shared by the Lambda tests: API Gateway events built from the fixtures in `tests/data/`.

#![allow(dead_code)]

use serde_json::{Value, json};

pub fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture `name`, turned into a `method path?query` request with an optional JSON body.
pub fn event(name: &str, method: &str, target: &str, body: Option<Value>) -> Value {
    let mut e = fixture(name);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let body_text = body.map(|b| b.to_string());
    if e["version"] == "2.0" {
        let stage = e["requestContext"]["stage"].as_str().unwrap_or("$default").to_string();
        let raw = if stage == "$default" { path.to_string() } else { format!("/{stage}{path}") };
        e["rawPath"] = json!(raw);
        e["rawQueryString"] = json!(query);
        e["requestContext"]["http"]["method"] = json!(method);
        e["requestContext"]["http"]["path"] = json!(raw);
        if !query.is_empty() {
            let params: serde_json::Map<String, Value> =
                query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), json!(v))).collect();
            e["queryStringParameters"] = Value::Object(params);
        }
        if let Some(b) = &body_text {
            e["headers"]["content-type"] = json!("application/json");
            e["headers"]["content-length"] = json!(b.len().to_string());
        }
    } else {
        let stage = e["requestContext"]["stage"].as_str().unwrap().to_string();
        e["path"] = json!(path);
        e["httpMethod"] = json!(method);
        e["requestContext"]["httpMethod"] = json!(method);
        e["requestContext"]["path"] = json!(format!("/{stage}{path}"));
        e["pathParameters"] = json!({ "proxy": path.trim_start_matches('/') });
        if !query.is_empty() {
            let params: serde_json::Map<String, Value> =
                query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), json!(v))).collect();
            let multi: serde_json::Map<String, Value> = params.iter().map(|(k, v)| (k.clone(), json!([v]))).collect();
            e["queryStringParameters"] = Value::Object(params);
            e["multiValueQueryStringParameters"] = Value::Object(multi);
        }
        if body_text.is_some() {
            e["headers"]["Content-Type"] = json!("application/json");
            e["multiValueHeaders"]["Content-Type"] = json!(["application/json"]);
        }
    }
    e["body"] = body_text.map(Value::String).unwrap_or(Value::Null);
    e
}

/// Status and JSON body of an API Gateway proxy response (as the function serialised it).
pub fn status_and_body(res: &Value) -> (u16, Value) {
    let status = res["statusCode"].as_u64().unwrap_or_else(|| panic!("not a proxy response: {res}")) as u16;
    let body = match res["body"].as_str() {
        Some(s) if !s.is_empty() => serde_json::from_str(s).unwrap_or(Value::String(s.into())),
        _ => Value::Null,
    };
    (status, body)
}

/// The request the function gets for `event`, parsed as `bootstrap` parses it.
pub fn request(event: &Value, context: lambda_http::Context) -> lambda_http::Request {
    lambda::event::ApiEvent::from_slice(event.to_string().as_bytes()).unwrap().into_request(context).1
}

/// Log lines captured in memory.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Captures this thread's log lines as the function writes them (JSON, its own filter at
/// `level`) until the guard is dropped.
pub fn capture_logs(level: &str) -> (tracing::subscriber::DefaultGuard, Logs) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(lambda::log_filter(level).unwrap())
        .with_writer(move || writer.clone())
        .finish();
    (tracing::subscriber::set_default(subscriber), logs)
}
