//! Helpers for the API's integration tests: a fresh database per test and a way to call
//! `App::handle` as a given user.

#![allow(dead_code)]

use api::{App, Principal, RequestId};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use testkit::pg::TestDb;

/// Every table with rows of tenants or users.
pub const TABLES: [&str; 5] = ["tenants", "users", "memberships", "todos", "invitations"];

/// [`TABLES`] and the idempotency records.
pub const ALL_TABLES: [&str; 6] = ["tenants", "users", "memberships", "todos", "invitations", "idempotency_keys"];

/// The issuer of the test principals.
pub const ISSUER: &str = "jwt:https://issuer.test";

/// The principal of a test user: `sub` under [`ISSUER`], with a verified email `sub@example.com`.
pub fn principal(sub: &str) -> Principal {
    Principal {
        issuer: ISSUER.to_string(),
        subject: sub.to_string(),
        email: Some(format!("{sub}@example.com")),
        email_verified: true,
        name: Some(format!("User {sub}")),
    }
}

fn to_bytes(body: Option<Value>) -> Bytes {
    body.map(|b| Bytes::from(serde_json::to_vec(&b).unwrap())).unwrap_or_default()
}

/// A store on `db`: through `standin` (DSQL tokens) when there is one, else with the runtime
/// role's password.
fn store_for(db: &TestDb, standin: Option<&iam_standin::Standin>) -> store::Store {
    match standin {
        None => db.runtime_store(),
        Some(standin) => {
            let cfg = testkit::iam::config_for(db, standin, store::Engine::Dsql);
            let cache = testkit::iam::token_cache(std::sync::Arc::new(db_auth::SystemClock));
            store::Store::new(cfg.clone(), testkit::iam::tokens(&cfg, cache)).expect("a DSQL config")
        }
    }
}

pub struct TestApp {
    pub app: App,
    pub db: TestDb,
    /// On the DSQL engine (`TEST_DB_ENGINE=dsql`): the IAM stand-in in DSQL mode that the app
    /// logs in through, with DSQL tokens over verified TLS, as it would on Aurora DSQL.
    pub standin: Option<std::sync::Arc<iam_standin::Standin>>,
    /// With `TEST_PLACEMENT=mixed`: silo tenants. The app logs in to the control database
    /// through the IAM stand-in, and every other tenant created through it (the first, the
    /// third...) is moved to a dedicated database in a second cluster right after.
    pub silo: Option<std::sync::Arc<testkit::silo::Silo>>,
    created: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The plan catalogue of this app and of [`TestApp::another`] (the built-in one if `None`).
    plans: Option<std::sync::Arc<limits::Plans>>,
}

/// Whether the tests run with a mix of pooled and dedicated tenants (`TEST_PLACEMENT=mixed`).
pub fn mixed() -> bool {
    std::env::var("TEST_PLACEMENT").is_ok_and(|v| v == "mixed") && testkit::pg::engine() == store::Engine::Postgres
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The error code of an error reply, after checking the error shape.
    pub fn error_code(&self) -> &str {
        let e = &self.body["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "error has a message: {}", self.body);
        assert!(e["request_id"].as_str().is_some_and(|m| !m.is_empty()), "error has a request id: {}", self.body);
        e["code"].as_str().unwrap_or_else(|| panic!("not an error reply: {}", self.body))
    }

    pub fn id(&self) -> String {
        self.body["id"].as_str().unwrap_or_else(|| panic!("no id in {}", self.body)).to_string()
    }
}

impl TestApp {
    /// The app on a fresh database: on PostgreSQL logged in as the runtime role with its
    /// password; on the DSQL engine through the IAM stand-in in DSQL mode.
    pub async fn new() -> Self {
        Self::with_dsql_limits(iam_standin::dsql::Limits::default()).await
    }

    /// [`TestApp::new`], with the DSQL stand-in's `limits` (on the DSQL engine) in place of
    /// DSQL's documented ones.
    pub async fn with_dsql_limits(limits: iam_standin::dsql::Limits) -> Self {
        if mixed() {
            let silo = testkit::silo::Silo::new().await;
            return Self {
                app: App::new(silo.instance()),
                db: silo.control.clone(),
                standin: None,
                silo: Some(std::sync::Arc::new(silo)),
                created: Default::default(),
                plans: None,
            };
        }
        let db = testkit::pg::db().await;
        let standin = match testkit::pg::engine() {
            store::Engine::Postgres => None,
            engine @ store::Engine::Dsql => Some(std::sync::Arc::new(
                testkit::iam::standin_with(&db, std::sync::Arc::new(db_auth::SystemClock), engine, limits).await,
            )),
        };
        Self {
            app: App::new(store_for(&db, standin.as_deref())),
            db,
            standin,
            silo: None,
            created: Default::default(),
            plans: None,
        }
    }

    /// [`TestApp::new`] with the plan catalogue `plans` (for this app and its others).
    pub async fn with_plans(plans: limits::Plans) -> Self {
        let mut t = Self::new().await;
        t.app = App::new(t.app.store().clone().with_plans(&plans));
        t.plans = Some(std::sync::Arc::new(plans));
        t
    }

    /// Another instance of the app on the same database (another Lambda instance), with its
    /// own connection (and, on DSQL, its own token cache).
    pub fn another(&self) -> Self {
        let store = match &self.silo {
            Some(silo) => silo.instance(),
            None => store_for(&self.db, self.standin.as_deref()),
        };
        let store = match &self.plans {
            Some(plans) => store.with_plans(plans),
            None => store,
        };
        Self {
            app: App::new(store),
            db: self.db.clone(),
            standin: self.standin.clone(),
            silo: self.silo.clone(),
            created: self.created.clone(),
            plans: self.plans.clone(),
        }
    }

    /// Calls the app as `user` (a subject; `None` for no identity) with an optional JSON body.
    pub async fn call(&self, user: Option<&str>, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.raw(user, method, path, Some("application/json"), to_bytes(body)).await
    }

    pub async fn raw(
        &self,
        user: Option<&str>,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Reply {
        self.send(user.map(principal), method, path, content_type, None, body).await.0
    }

    /// One request through `App::handle`; the reply and the body's exact bytes. A 5xx fails
    /// the test.
    async fn send(
        &self,
        who: Option<Principal>,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        header: Option<(&str, &str)>,
        body: Bytes,
    ) -> (Reply, Bytes) {
        let creates_tenant = method == Method::POST && path == "/api/tenants";
        let mut req = Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        let mut req = req.body(body).unwrap();
        if let Some(who) = who {
            req.extensions_mut().insert(who);
        }
        req.extensions_mut().insert(RequestId(format!("test-{}", uuid::Uuid::new_v4())));
        let res = self.app.handle(req).await;
        let (status, headers, raw) = (res.status(), res.headers().clone(), res.body().clone());
        let body = if raw.is_empty() { Value::Null } else { serde_json::from_slice(&raw).expect("JSON body") };
        assert!(!status.is_server_error(), "server error {status}: {body}");
        if let Some(silo) = &self.silo
            && creates_tenant
            && status == StatusCode::CREATED
            && self.created.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(2)
        {
            let tenant = store::TenantId::parse(body["id"].as_str().unwrap()).unwrap();
            let to = store::placement::mover::Direction::ToDedicated;
            silo.move_to(tenant, to, &Default::default()).await.expect("move the new tenant to its own database");
        }
        (Reply { status, headers, body }, raw)
    }

    pub async fn get(&self, user: &str, path: &str) -> Reply {
        self.call(Some(user), Method::GET, path, None).await
    }

    pub async fn post(&self, user: &str, path: &str, body: Value) -> Reply {
        self.call(Some(user), Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, user: &str, path: &str, body: Value) -> Reply {
        self.call(Some(user), Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, user: &str, path: &str, body: Value) -> Reply {
        self.call(Some(user), Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, user: &str, path: &str) -> Reply {
        self.call(Some(user), Method::DELETE, path, None).await
    }

    /// Creates a tenant as `admin` and returns its id.
    pub async fn tenant(&self, admin: &str, name: &str) -> String {
        let r = self.post(admin, "/api/tenants", serde_json::json!({ "name": name })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.id()
    }

    /// The user id of a subject (calls /api/me, which registers them).
    pub async fn user_id(&self, user: &str) -> String {
        let r = self.get(user, "/api/me").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["user"]["id"].as_str().unwrap().to_string()
    }

    /// Adds `user` to `tenant` with `role`: `admin` invites, `user` accepts.
    pub async fn add_member(&self, admin: &str, tenant: &str, user: &str, role: &str) {
        let code = self.invite(admin, tenant, serde_json::json!({ "role": role })).await;
        let r = self.post(user, "/api/invitations/accept", serde_json::json!({ "code": code })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!((r.body["tenant_id"].as_str(), r.body["role"].as_str()), (Some(tenant), Some(role)));
    }

    /// Creates an invitation to `tenant` as `admin`; returns its code.
    pub async fn invite(&self, admin: &str, tenant: &str, body: Value) -> String {
        let r = self.post(admin, &format!("/api/tenants/{tenant}/invitations"), body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["code"].as_str().unwrap().to_string()
    }

    /// Calls the app as `user` with an `Idempotency-Key`; also says whether the answer was
    /// replayed, and returns the body's exact bytes.
    pub async fn keyed(
        &self,
        user: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        key: &str,
    ) -> (Reply, bool, Bytes) {
        let json = Some("application/json");
        let (reply, raw) =
            self.send(Some(principal(user)), method, path, json, Some(("idempotency-key", key)), to_bytes(body)).await;
        let replayed = reply.headers.get("idempotent-replayed").is_some_and(|v| v == "true");
        (reply, replayed, raw)
    }

    /// Calls the app as this exact principal.
    pub async fn call_as(&self, who: Principal, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.send(Some(who), method, path, Some("application/json"), None, to_bytes(body)).await.0
    }

    /// Superuser clients of every database with tenants' rows: the control database, and the
    /// dedicated one with `TEST_PLACEMENT=mixed`.
    pub async fn admins(&self) -> Vec<tokio_postgres::Client> {
        let mut out = vec![self.db.admin().await];
        if let Some(silo) = &self.silo {
            out.push(silo.dedicated.admin().await);
        }
        out
    }

    /// The rows of `table` in every database, as superuser. A dedicated database's copies of
    /// tenants, users and memberships are not counted (the control database has the originals).
    pub async fn count(&self, table: &str) -> i64 {
        let copies = ["tenants", "users", "memberships"].contains(&table);
        let mut n = 0;
        for (i, admin) in self.admins().await.iter().enumerate() {
            if i == 0 || !copies {
                n += admin.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get::<_, i64>(0);
            }
        }
        n
    }

    /// Row counts of every table, read as superuser (bypassing RLS).
    pub async fn counts(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for t in TABLES {
            out.push((t.to_string(), self.count(t).await));
        }
        out
    }

    /// A digest of all table contents, to show that a rejected request changed nothing.
    pub async fn snapshot(&self) -> String {
        let mut out = String::new();
        for (i, admin) in self.admins().await.iter().enumerate() {
            for t in TABLES {
                if i > 0 && ["tenants", "users", "memberships"].contains(&t) {
                    continue;
                }
                out.push_str(&Self::digest(admin, t).await);
            }
        }
        out
    }

    /// Every row of `t`, as text, in order.
    async fn digest(admin: &tokio_postgres::Client, t: &str) -> String {
        let row = admin
            .query_one(&format!("SELECT coalesce(string_agg(x::text, '|' ORDER BY x::text), '') FROM {t} x"), &[])
            .await
            .unwrap();
        format!("{}\n", row.get::<_, String>(0))
    }
}
