//! The fault tests' rig: a function behind the IAM stand-in on a throwaway database, and what
//! a call through it answered.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use db_auth::{Clock, SystemClock, TokenCache};
use iam_standin::Standin;
use lambda::{Function, Identity, Source};
use lambda_http::Body;
use serde_json::{Value, json};
use store::Store;
use testkit::{iam, pg::TestDb};

use crate::common::{self, event};

pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);

pub struct Rig {
    pub db: TestDb,
    pub standin: Standin,
    pub cache: Arc<TokenCache>,
    pub f: Function,
}

impl Rig {
    pub async fn new() -> Rig {
        Rig::with_clock(Arc::new(SystemClock)).await
    }

    pub async fn with_clock(clock: Arc<dyn Clock>) -> Rig {
        Rig::build(clock, |_| {}).await
    }

    pub async fn build(clock: Arc<dyn Clock>, tune: impl FnOnce(&mut store::DbConfig)) -> Rig {
        let db = testkit::pg::db().await;
        let standin = iam::standin(&db, clock.clone()).await;
        let mut cfg = iam::config(&db, &standin);
        cfg.connect_timeout = CONNECT_TIMEOUT;
        tune(&mut cfg);
        let cache = iam::token_cache(clock);
        let store = Store::new(cfg.clone(), iam::tokens(&cfg, cache.clone())).unwrap();
        let f = Function::new(api::App::new(store), Identity::with_sources(vec![Source::ApiGatewayJwt], None));
        Rig { db, standin, cache, f }
    }

    /// One request as alice; status, body, Retry-After, and how long it took.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.call_due(method, path, body, None).await
    }

    /// [`Rig::call`] with an `Idempotency-Key`; also whether the answer was replayed.
    pub async fn call_keyed(&self, method: &str, path: &str, body: Option<Value>, key: &str) -> (Answer, bool) {
        let mut e = event("apigw-v2-jwt.json", method, path, body);
        e["headers"]["idempotency-key"] = json!(key);
        self.send(e, None).await
    }

    /// [`Rig::call`] with Lambda's deadline for the invocation `due` from now.
    pub async fn call_due(&self, method: &str, path: &str, body: Option<Value>, due: Option<Duration>) -> Answer {
        self.send(event("apigw-v2-jwt.json", method, path, body), due).await.0
    }

    /// One event through the function; the answer, and whether it was a replay.
    pub async fn send(&self, e: Value, due: Option<Duration>) -> (Answer, bool) {
        let mut ctx = lambda_http::Context::default();
        ctx.request_id = "fault-test".into();
        if let Some(due) = due {
            let epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap() + due;
            ctx.deadline = epoch.as_millis() as u64;
        }
        let req = common::request(&e, ctx);
        let started = Instant::now();
        let res = self.f.handle(req).await;
        let took = started.elapsed();
        let body = match res.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap(),
            _ => Value::Null,
        };
        let retry_after = res.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        let replayed = res.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
        (Answer { status: res.status().as_u16(), body, retry_after, took }, replayed)
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db.admin().await.query_one(sql, &[]).await.unwrap().get(0)
    }

    pub fn connects(&self) -> u64 {
        self.f.app().store().stats().connects
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<u64>,
    pub took: Duration,
}

impl Answer {
    /// A 503 with the error shape, `Retry-After`, and nothing internal in the body.
    pub fn unavailable(&self) {
        assert_eq!(self.status, 503, "{self:?}");
        assert_eq!(self.body["error"]["code"], "service_unavailable", "{self:?}");
        assert_eq!(self.body["error"]["request_id"], "fault-test");
        assert!(self.retry_after.is_some_and(|s| s >= 1), "Retry-After: {self:?}");
        let text = self.body.to_string();
        assert!(!text.contains("X-Amz") && !text.contains("standin") && !text.contains("127.0.0.1"), "{text}");
    }
}

pub async fn tenant(rig: &Rig) -> String {
    let r = rig.call("POST", "/api/tenants", Some(json!({ "name": "Acme" }))).await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["id"].as_str().unwrap().to_string()
}
