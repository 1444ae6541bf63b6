//! Warm latency: requests through the Lambda adapter in-process beside the floor (the same SQL,
//! pipelined the same way, on a plain tokio-postgres connection), and the instruction counts of
//! one route on either side (`count`).

use std::time::{Duration, Instant, SystemTime};

use api::App;
use futures_util::future::{join, join5};
use lambda::{Function, Identity, Source};
use serde_json::{Value, json};
use store::{Q, Store};
use testkit::pg::TestDb;
use tokio_postgres::{Client, Statement, types::ToSql};
use uuid::Uuid;

use crate::{Args, Results, Warm};

pub(crate) const SUBJECT: &str = "bench-user";
/// A plan catalogue whose limits the benchmark never reaches: it measures the request path with
/// the rate limiter in it (its local path), not the limits (`noisy.rs` does).
pub(crate) const UNMETERED: &str = r#"{"default": "bench", "plans": {"bench": {"rate": 1000000, "burst": 1000000,
    "todos": 1000000000, "members": 1000000, "pending_invitations": 1000000, "tenants_per_user": 1000000}}}"#;
/// The function's settings in the benchmark: identity from JWT authorizer claims, quiet logs,
/// the unmetered plans.
pub(crate) const QUIET: &[(&str, &str)] =
    &[("IDENTITY_SOURCES", "apigw_jwt"), ("LOG_LEVEL", "warn"), ("PLANS", UNMETERED)];

pub(crate) fn claims_event(method: &str, path: &str, body: Option<&Value>) -> String {
    let (raw_path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut e = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": raw_path, "rawQueryString": query,
        "headers": { "accept": "application/json", "host": "bench.execute-api.eu-west-1.amazonaws.com" },
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "stage": "$default", "requestId": "bench",
            "domainName": "bench.execute-api.eu-west-1.amazonaws.com", "domainPrefix": "bench",
            "time": "22/Nov/2026:10:49:13 +0000", "timeEpoch": 1795344553000u64, "routeKey": "$default",
            "http": { "method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "bench" },
            "authorizer": { "jwt": { "claims": { "sub": SUBJECT, "email": "bench@example.com" }, "scopes": null } }
        },
        "isBase64Encoded": false
    });
    if let Some(b) = body {
        e["headers"]["content-type"] = json!("application/json");
        e["body"] = json!(b.to_string());
    }
    e.to_string()
}

pub(crate) fn median_of_slices(times: &[Duration]) -> f64 {
    let mut p50s: Vec<f64> = times
        .chunks(times.len().div_ceil(5))
        .map(|c| {
            let mut c = c.to_vec();
            c.sort();
            percentile(&c, 0.5)
        })
        .collect();
    p50s.sort_by(f64::total_cmp);
    p50s[p50s.len() / 2]
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

/// The same statements the store pipelines for a tenant-scoped request, issued directly.
pub(crate) struct Floor {
    client: Client,
    stmts: Vec<Statement>,
}

impl Floor {
    /// One plain connection as the runtime role, with the same session settings as the store's
    /// (the server-side timeouts cost the same on both sides).
    pub(crate) async fn connect(db: &TestDb, session_settings: &str) -> Floor {
        let (client, conn) = tokio_postgres::connect(&db.runtime_url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client.batch_execute(session_settings).await.unwrap();
        let mut stmts = Vec::new();
        for q in Q::ALL {
            stmts.push(client.prepare(q.sql()).await.unwrap());
        }
        Floor { client, stmts }
    }

    /// BEGIN, scope (user, then tenant membership), the statement, the placement fence check
    /// (every todo transaction ends with it: docs/silo.md), COMMIT: sent together.
    pub(crate) async fn run(
        &self,
        read: bool,
        user: Uuid,
        tenant: Uuid,
        q: Q,
        params: &[&(dyn ToSql + Sync)],
    ) -> usize {
        let c = &self.client;
        let (writing, dedicated) = (!read, false);
        let (b, s, m, (rows, fenced), cm) = join5(
            c.batch_execute(if read { "BEGIN READ ONLY" } else { "BEGIN" }),
            c.query(&self.stmts[Q::ScopeSet as usize], &[&user]),
            c.query(&self.stmts[Q::ScopeMember as usize], &[&user, &tenant]),
            join(
                c.query(&self.stmts[q as usize], params),
                c.query(&self.stmts[Q::FenceCheck as usize], &[&tenant, &writing, &dedicated]),
            ),
            c.batch_execute("COMMIT"),
        )
        .await;
        b.unwrap();
        s.unwrap();
        m.unwrap();
        fenced.unwrap();
        cm.unwrap();
        rows.unwrap().len()
    }
}

pub(crate) async fn handle(f: &Function, event: &str) -> u16 {
    let mut ctx = lambda_http::Context::default();
    ctx.request_id = "bench".into();
    // As bootstrap does it: parse the event, handle it, shape the proxy response.
    let (origin, req) = lambda::event::ApiEvent::from_slice(event.as_bytes()).unwrap().into_request(ctx);
    let res = lambda::event::ApiResponse::new(origin, f.handle(req).await);
    match &res {
        lambda::event::ApiResponse::HttpApi(r) => r.status_code as u16,
        lambda::event::ApiResponse::Rest(r) => r.status_code as u16,
    }
}

/// The function over `store` as the benchmark runs it: identity from JWT authorizer claims.
pub(crate) fn function(store: Store) -> Function {
    function_with(store, &limits::Plans::from_json(UNMETERED).expect("the unmetered plans"))
}

/// [`function`] with the plan catalogue `plans`.
pub(crate) fn function_with(store: Store, plans: &limits::Plans) -> Function {
    Function::new(App::new(store.with_plans(plans)), Identity::with_sources(vec![Source::ApiGatewayJwt], None))
}

/// A tenant of 20 todos made through `f` by the benchmark's user: the tenant, its todos' path
/// and the id of one of them.
pub(crate) async fn seed(f: &Function) -> (Uuid, String, Uuid) {
    let tenant = Uuid::new_v4();
    assert_eq!(
        handle(f, &claims_event("POST", "/api/tenants", Some(&json!({ "name": "bench", "id": tenant })))).await,
        201
    );
    let todos = format!("/api/tenants/{tenant}/todos");
    let one = Uuid::new_v4();
    assert_eq!(handle(f, &claims_event("POST", &todos, Some(&json!({ "title": "the one", "id": one })))).await, 201);
    for i in 0..19 {
        assert_eq!(handle(f, &claims_event("POST", &todos, Some(&json!({ "title": format!("todo {i}") })))).await, 201);
    }
    (tenant, todos, one)
}

/// The measured routes of the tenant whose todos are at `todos`: name, event, expected status.
/// In the last one's event, `@KEY@` stands for an `Idempotency-Key` that [`Setup::event`] makes
/// unique per request.
pub(crate) fn routes(todos: &str, one: Uuid) -> [(&'static str, String, u16); 5] {
    let mut keyed: Value =
        serde_json::from_str(&claims_event("POST", todos, Some(&json!({ "title": TITLE })))).unwrap();
    keyed["headers"]["idempotency-key"] = json!(KEY);
    [
        ("GET todos (20 items)", claims_event("GET", &format!("{todos}?limit=20"), None), 200),
        ("GET one todo", claims_event("GET", &format!("{todos}/{one}"), None), 200),
        ("POST a todo", claims_event("POST", todos, Some(&json!({ "title": TITLE }))), 201),
        ("PATCH a todo", claims_event("PATCH", &format!("{todos}/{one}"), Some(&json!({ "complete": true }))), 200),
        ("POST a todo with an Idempotency-Key", keyed.to_string(), 201),
    ]
}

fn time_start() -> SystemTime {
    SystemTime::UNIX_EPOCH
}

/// A database with a tenant of 20 todos made through the function, the function, and the floor.
pub(crate) struct Setup {
    /// Kept for as long as the set-up is used.
    pub _db: TestDb,
    pub store: Store,
    pub f: Function,
    pub floor: Floor,
    pub user: Uuid,
    pub tenant: Uuid,
    pub todos: String,
    pub one: Uuid,
}

impl Setup {
    pub(crate) async fn new() -> Setup {
        let db = testkit::pg::db().await;
        let store = db.runtime_store();
        let f = function(store.clone());
        let (tenant, todos, one) = seed(&f).await;
        let floor = Floor::connect(&db, store.session_settings()).await;
        let user: Uuid = db
            .admin()
            .await
            .query_one("SELECT id FROM users WHERE subject = $1", &[&SUBJECT])
            .await
            .expect("the bench user registered")
            .get(0);
        Setup { _db: db, store, f, floor, user, tenant, todos, one }
    }

    /// The measured routes ([`routes`]).
    pub(crate) fn routes(&self) -> [(&'static str, String, u16); 5] {
        routes(&self.todos, self.one)
    }

    /// Request `n`'s event of a route: a fresh key where the route has one.
    pub(crate) fn event<'e>(event: &'e str, n: usize) -> std::borrow::Cow<'e, str> {
        if event.contains(KEY) {
            std::borrow::Cow::Owned(event.replace(KEY, &format!("{}-{n}", Uuid::new_v4())))
        } else {
            std::borrow::Cow::Borrowed(event)
        }
    }

    /// Route `i`'s SQL on the floor connection; the rows it returned.
    pub(crate) async fn floor_route(&self, i: usize) -> usize {
        let (user, tenant, one) = (self.user, self.tenant, self.one);
        let (start_ts, nil, limit, complete) = (time_start(), Uuid::nil(), 21_i64, None::<bool>);
        let floor = &self.floor;
        match i {
            0 => floor.run(true, user, tenant, Q::TodoList, &[&tenant, &complete, &start_ts, &nil, &limit]).await,
            1 => floor.run(true, user, tenant, Q::TodoGet, &[&tenant, &one]).await,
            // The keyed POST's floor is the plain POST's: the key's cost is ours.
            2 | 4 => {
                let (id, done) = (Uuid::new_v4(), false);
                // The quota's plan names and values (the unmetered catalogue's one plan).
                let (names, caps) = (vec!["bench".to_string()], vec![1_000_000_000_i64]);
                floor.run(false, user, tenant, Q::TodoCreate, &[&tenant, &id, &TITLE, &done, &names, &caps]).await
            }
            _ => {
                let (no_title, done) = (None::<&str>, Some(true));
                floor.run(false, user, tenant, Q::TodoUpdate, &[&tenant, &one, &no_title, &done]).await
            }
        }
    }
}

const TITLE: &str = "a new todo";
const KEY: &str = "@KEY@";

pub(crate) async fn warm(args: &Args, results: &mut Results) {
    let s = Setup::new().await;
    let (f, store) = (&s.f, &s.store);

    // What the adapter and the app cost without the database: event parsing, routing,
    // response building.
    let health = claims_event("GET", "/health", None);
    let mut times = Vec::with_capacity(args.requests);
    for n in 0..args.requests + args.requests / 10 {
        let t = Instant::now();
        assert_eq!(handle(f, &health).await, 200);
        if n >= args.requests / 10 {
            times.push(t.elapsed());
        }
    }
    times.sort();
    results.adapter_only_p50_us = percentile(&times, 0.5);

    for (i, (name, event, status)) in s.routes().iter().enumerate() {
        let mut app_times = Vec::with_capacity(args.requests);
        let mut floor_times = Vec::with_capacity(args.requests);
        let before = store.stats().round_trips;
        // A tenth of the requests warm caches and plans, unmeasured; before the first route, half
        // as many again, so that the machine has settled (bench.sh has just built and zipped).
        let warmup = args.requests / 10 + if i == 0 { args.requests / 2 } else { 0 };
        let total = args.requests + warmup;
        for n in 0..total {
            let event = Setup::event(event, n);
            let t = Instant::now();
            assert_eq!(handle(f, &event).await, *status, "{name}");
            let app = t.elapsed();
            let t = Instant::now();
            assert!(s.floor_route(i).await >= 1);
            let floor_t = t.elapsed();
            if n >= warmup {
                app_times.push(app);
                floor_times.push(floor_t);
            }
        }
        let round_trips = (store.stats().round_trips - before) as f64 / total as f64;
        // The p50 is the median of the p50s of five consecutive slices: a hiccup of the shared
        // machine (a checkpoint, a neighbour) then moves one slice, not the result.
        let (p50, floor_p50) = (median_of_slices(&app_times), median_of_slices(&floor_times));
        app_times.sort();
        floor_times.sort();
        results.warm.push(Warm {
            route: name,
            requests: app_times.len(),
            p50_us: p50,
            p99_us: percentile(&app_times, 0.99),
            floor_p50_us: floor_p50,
            floor_p99_us: percentile(&floor_times, 0.99),
            ratio_p50: p50 / floor_p50,
            round_trips_per_request: round_trips,
        });
    }
    results.keyed = Some(keyed_beside_plain(&s, args.requests).await);
}

/// The POST with an `Idempotency-Key` beside the same POST without one, interleaved request by
/// request (each first in turn), so that the machine's drift between two routes' runs does not
/// enter their ratio: the p50s (median of five slices' p50s) of the plain and the keyed POST.
async fn keyed_beside_plain(s: &Setup, requests: usize) -> (f64, f64) {
    let routes = s.routes();
    let (plain, keyed) = (&routes[2], &routes[4]);
    let (mut plain_times, mut keyed_times) = (Vec::with_capacity(requests), Vec::with_capacity(requests));
    let warmup = requests / 10;
    for n in 0..requests + warmup {
        let keyed_event = Setup::event(&keyed.1, n);
        let mut times = [Duration::ZERO; 2];
        for which in [n % 2, 1 - n % 2] {
            let (event, status) = if which == 0 { (plain.1.as_str(), plain.2) } else { (&*keyed_event, keyed.2) };
            let t = Instant::now();
            assert_eq!(handle(&s.f, event).await, status);
            times[which] = t.elapsed();
        }
        if n >= warmup {
            plain_times.push(times[0]);
            keyed_times.push(times[1]);
        }
    }
    (median_of_slices(&plain_times), median_of_slices(&keyed_times))
}
