//! The Aurora DSQL path beside the Aurora path: the same function, routes and tenant on each
//! engine's schema and statements, each logging in through the IAM-auth stand-in in the
//! matching mode (Aurora IAM tokens, DSQL `DbConnect` tokens), requests interleaved one by one.
//!
//! Beside the warm benchmark's routes, one more: the first page of a tenant of
//! [`BIG_TENANT`] todos, where a plan that does not stop at the page's end shows.
//!
//! Both paths relay through the same local stand-in to the same local PostgreSQL, so only the
//! relative figures mean anything: what DSQL's statements cost against Aurora's on one server,
//! not DSQL's latency (a distributed service over the network, not a relay on loopback).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use db_auth::SystemClock;
use iam_standin::Standin;
use lambda::Function;
use store::{Engine, Store};
use testkit::{iam, pg::TestDb};

use serde_json::json;

use crate::{
    Args, Results,
    warm::{Setup, claims_event, handle, median_of_slices, percentile, routes, seed},
};

/// The todos of the second tenant, made with one INSERT by the administrator.
const BIG_TENANT: usize = 5_000;
const BIG_ROUTE: &str = "GET todos (20 of a tenant's 5,000)";

/// One route on both paths.
#[derive(serde::Serialize)]
pub(crate) struct EnginePair {
    pub route: &'static str,
    /// Measured requests on each path.
    pub requests: usize,
    pub aurora_p50_us: f64,
    pub aurora_p99_us: f64,
    pub dsql_p50_us: f64,
    pub dsql_p99_us: f64,
    /// DSQL's p50 over Aurora's.
    pub ratio_p50: f64,
    pub aurora_round_trips_per_request: f64,
    pub dsql_round_trips_per_request: f64,
    /// Transactions run again on either path (conflicts, lost connections); none expected.
    pub retries: u64,
}

/// One engine's path: a fresh database with its schema, the stand-in in its mode, the function.
struct Path {
    _db: TestDb,
    _standin: Standin,
    store: Store,
    f: Function,
    routes: Vec<(&'static str, String, u16)>,
}

impl Path {
    async fn new(engine: Engine) -> Path {
        let db = testkit::pg::db_for(engine).await;
        let standin = iam::standin_for(&db, Arc::new(SystemClock), engine).await;
        let cfg = iam::config_for(&db, &standin, engine);
        let cache = iam::token_cache(Arc::new(SystemClock));
        let store = Store::new(cfg.clone(), iam::tokens(&cfg, cache)).expect("a valid config");
        let f = crate::warm::function(store.clone());
        let (_, todos, one) = seed(&f).await;
        let big = uuid::Uuid::new_v4();
        let event = claims_event("POST", "/api/tenants", Some(&json!({ "name": "big", "id": big })));
        assert_eq!(handle(&f, &event).await, 201);
        // Only `todos` is analysed: statistics of an empty `idempotency_keys` would make the
        // keyed POST's cached plans scan that table as it fills (until autovacuum analyses it
        // again, which a run of this length does not wait for).
        db.admin()
            .await
            .batch_execute(&format!(
                "INSERT INTO todos (tenant_id, id, title, created_at) \
                 SELECT '{big}', gen_random_uuid(), 'todo ' || g, now() - interval '1 hour' + g * interval '1 ms' \
                 FROM generate_series(1, {BIG_TENANT}) g; ANALYZE todos"
            ))
            .await
            .expect("the big tenant's todos");
        assert_eq!(standin.accepted_logins(), 1, "{}: one login through the stand-in", engine.name());
        let mut routes = routes(&todos, one).to_vec();
        let page = claims_event("GET", &format!("/api/tenants/{big}/todos?limit=20"), None);
        routes.push((BIG_ROUTE, page, 200));
        Path { _db: db, _standin: standin, store, f, routes }
    }

    /// Route `i`'s request `n`; how long it took.
    async fn request(&self, i: usize, n: usize) -> Duration {
        let (name, event, status) = &self.routes[i];
        let event = Setup::event(event, n);
        let t = Instant::now();
        assert_eq!(handle(&self.f, &event).await, *status, "{name}");
        t.elapsed()
    }
}

pub(crate) async fn engines(args: &Args, results: &mut Results) {
    let aurora = Path::new(Engine::Postgres).await;
    let dsql = Path::new(Engine::Dsql).await;
    for (i, (name, _, _)) in aurora.routes.iter().enumerate() {
        // Unmeasured warm-up: caches, plans, and the first keyed request's prepares.
        let warmup = args.requests / 10 + if i == 0 { args.requests / 4 } else { 0 };
        for n in 0..warmup {
            aurora.request(i, n).await;
            dsql.request(i, n).await;
        }
        let (a0, d0) = (aurora.store.stats(), dsql.store.stats());
        let mut a_times = Vec::with_capacity(args.requests);
        let mut d_times = Vec::with_capacity(args.requests);
        for n in warmup..warmup + args.requests {
            // Request by request, each path first in turn, so that the machine's noise and any
            // advantage of going first or second fall on both alike.
            if n % 2 == 0 {
                a_times.push(aurora.request(i, n).await);
                d_times.push(dsql.request(i, n).await);
            } else {
                d_times.push(dsql.request(i, n).await);
                a_times.push(aurora.request(i, n).await);
            }
        }
        let (a1, d1) = (aurora.store.stats(), dsql.store.stats());
        let per_request = |before: u64, after: u64| (after - before) as f64 / args.requests as f64;
        let retries = (a1.retries - a0.retries) + (d1.retries - d0.retries);
        let pair = EnginePair {
            route: name,
            requests: args.requests,
            aurora_p50_us: median_of_slices(&a_times),
            aurora_p99_us: p99(&mut a_times),
            dsql_p50_us: median_of_slices(&d_times),
            dsql_p99_us: p99(&mut d_times),
            ratio_p50: 0.0,
            aurora_round_trips_per_request: per_request(a0.round_trips, a1.round_trips),
            dsql_round_trips_per_request: per_request(d0.round_trips, d1.round_trips),
            retries,
        };
        if retries == 0 {
            for (path, rt) in
                [("Aurora", pair.aurora_round_trips_per_request), ("DSQL", pair.dsql_round_trips_per_request)]
            {
                assert!(rt == 1.0, "{name} on the {path} path: {rt} round trips per request without a retry");
            }
        } else {
            eprintln!("note: {name}: {retries} transactions retried; round trips include them");
        }
        assert_eq!((a1.connects, d1.connects), (a0.connects, d0.connects), "{name}: no reconnect while measured");
        results.engines.push(EnginePair { ratio_p50: pair.dsql_p50_us / pair.aurora_p50_us, ..pair });
    }
}

fn p99(times: &mut [Duration]) -> f64 {
    times.sort();
    percentile(times, 0.99)
}

pub(crate) fn print_table(pairs: &[EnginePair]) {
    if pairs.is_empty() {
        return;
    }
    println!(
        "\nthe DSQL path beside the Aurora path, interleaved, both through the IAM stand-in to the same local \
         PostgreSQL\n(only the ratios mean anything: the stand-in is a local relay, not DSQL's latency)\n"
    );
    println!(
        "| route | Aurora p50 µs | DSQL p50 µs | DSQL / Aurora | Aurora p99 µs | DSQL p99 µs | round trips Aurora | round trips DSQL |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for p in pairs {
        println!(
            "| {} | {:.0} | {:.0} | {:.2}x | {:.0} | {:.0} | {:.2} | {:.2} |",
            p.route,
            p.aurora_p50_us,
            p.dsql_p50_us,
            p.ratio_p50,
            p.aurora_p99_us,
            p.dsql_p99_us,
            p.aurora_round_trips_per_request,
            p.dsql_round_trips_per_request
        );
    }
}
