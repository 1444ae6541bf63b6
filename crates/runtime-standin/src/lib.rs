//! Test-only: a stand-in for the Lambda Runtime API on loopback, speaking its real protocol, so
//! that the real `bootstrap` process can be run as Lambda runs it:
//!
//! - `GET  /2018-06-01/runtime/invocation/next` long-polls until an event is queued, then
//!   answers with the event and the `Lambda-Runtime-*` headers;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error` collect answers;
//! - `POST /2018-06-01/runtime/init/error` collects an init failure.
//!
//! Point the process at it with `AWS_LAMBDA_RUNTIME_API=<addr>`.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::{net::TcpListener, sync::Notify};

/// What the function answered for one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST .../response`: the body the function returned.
    Response(Value),
    /// `POST .../error`: the error-type header and the body.
    Error { error_type: Option<String>, body: Value },
}

#[derive(Debug, Default)]
struct State {
    queue: Mutex<VecDeque<(String, Value)>>,
    queued: Notify,
    outcomes: Mutex<HashMap<String, Outcome>>,
    answered: Notify,
    init_error: Mutex<Option<Value>>,
    polls: AtomicU64,
    first_poll: Mutex<Option<Instant>>,
    next_id: AtomicU64,
}

/// A running Runtime API stand-in.
#[derive(Debug)]
pub struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(State::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(route(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Queues an event; returns its request id.
    pub fn invoke(&self, event: Value) -> String {
        let id = format!("00000000-0000-4000-8000-{:012}", self.state.next_id.fetch_add(1, Ordering::SeqCst) + 1);
        self.state.queue.lock().unwrap().push_back((id.clone(), event));
        self.state.queued.notify_one();
        id
    }

    /// Waits for the answer to `request_id`.
    pub async fn outcome(&self, request_id: &str, timeout: Duration) -> Option<Outcome> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let answered = self.state.answered.notified();
            if let Some(o) = self.state.outcomes.lock().unwrap().get(request_id) {
                return Some(o.clone());
            }
            if tokio::time::timeout_at(deadline, answered).await.is_err() {
                return None;
            }
        }
    }

    /// Invokes and waits for the answer.
    pub async fn call(&self, event: Value, timeout: Duration) -> Option<Outcome> {
        let id = self.invoke(event);
        self.outcome(&id, timeout).await
    }

    /// The init error the function reported, if any (waiting up to `timeout`).
    pub async fn init_error(&self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let answered = self.state.answered.notified();
            if let Some(e) = self.state.init_error.lock().unwrap().clone() {
                return Some(e);
            }
            if tokio::time::timeout_at(deadline, answered).await.is_err() {
                return None;
            }
        }
    }

    /// `next` requests received so far.
    pub fn polls(&self) -> u64 {
        self.state.polls.load(Ordering::SeqCst)
    }

    /// When the first `next` arrived: the process is ready.
    pub fn first_poll(&self) -> Option<Instant> {
        *self.state.first_poll.lock().unwrap()
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res
}

async fn route(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let error_type =
        req.headers().get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let json = || {
        serde_json::from_slice::<Value>(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()))
    };
    let rest = path.strip_prefix("/2018-06-01/runtime/").unwrap_or("");
    match (method, rest.split('/').collect::<Vec<_>>().as_slice()) {
        (Method::GET, ["invocation", "next"]) => {
            state.polls.fetch_add(1, Ordering::SeqCst);
            state.first_poll.lock().unwrap().get_or_insert_with(Instant::now);
            let (id, event) = loop {
                let queued = state.queued.notified();
                if let Some(item) = state.queue.lock().unwrap().pop_front() {
                    break item;
                }
                queued.await;
            };
            let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(60);
            let mut res = reply(StatusCode::OK, serde_json::to_vec(&event).unwrap());
            let h = res.headers_mut();
            h.insert("content-type", "application/json".parse().unwrap());
            h.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
            h.insert("lambda-runtime-deadline-ms", deadline.as_millis().to_string().parse().unwrap());
            h.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-west-1:123456789012:function:tenant-api".parse().unwrap(),
            );
            h.insert("lambda-runtime-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".parse().unwrap());
            res
        }
        (Method::POST, ["invocation", id, "response"]) => {
            state.outcomes.lock().unwrap().insert(id.to_string(), Outcome::Response(json()));
            state.answered.notify_waiters();
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        (Method::POST, ["invocation", id, "error"]) => {
            state.outcomes.lock().unwrap().insert(id.to_string(), Outcome::Error { error_type, body: json() });
            state.answered.notify_waiters();
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        (Method::POST, ["init", "error"]) => {
            *state.init_error.lock().unwrap() = Some(json());
            state.answered.notify_waiters();
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        _ => reply(StatusCode::NOT_FOUND, r#"{"errorMessage":"unknown Runtime API path"}"#),
    }
}
