//! The benchmark (not a test: timings depend on the machine). One run prints a table and writes
//! it as JSON:
//!
//! - warm latency (p50, p99) of sequential requests through the Lambda adapter in-process
//!   (event JSON -> `lambda::Function::handle` -> response), for four routes, beside the floor:
//!   the same SQL statements, pipelined the same way, issued directly with tokio-postgres on one
//!   connection; and their ratio;
//! - database round trips per request (counted by the store, not timed);
//! - cold start of the release `bootstrap` through the Runtime API stand-in and the IAM-auth
//!   stand-in: spawn to first `next` poll (process ready) and to first response (TLS, token,
//!   login, statements prepared); natively, and for arm64 under qemu when given;
//! - peak RSS of `bootstrap` after 1,000 requests; binary and zip sizes;
//! - token signing time and token-cache hit time.
//!
//! Run it with `scripts/bench.sh`, which builds what it needs.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use api::App;
use clap::Parser;
use db_auth::{SystemClock, TokenCache, TokenRequest};
use futures_util::future::join5;
use lambda::{Function, Identity, Source};
use runtime_standin::{Outcome, RuntimeApi};
use serde::Serialize;
use serde_json::{Value, json};
use store::Q;
use testkit::{iam, pg::TestDb};
use tokio_postgres::{Client, Statement, types::ToSql};
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "Benchmark the tenant API (see docs/performance.md)")]
struct Args {
    /// Sequential requests per route for the warm latency.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Process spawns for the cold start.
    #[arg(long, default_value_t = 20)]
    spawns: usize,
    /// The release `bootstrap` for this machine.
    #[arg(long)]
    bootstrap: PathBuf,
    /// Its zip (scripts/package.sh --arch x86_64).
    #[arg(long)]
    zip: Option<PathBuf>,
    /// The arm64 `bootstrap`, run under `--qemu`, for its cold start and size.
    #[arg(long)]
    arm64_bootstrap: Option<PathBuf>,
    #[arg(long)]
    arm64_zip: Option<PathBuf>,
    #[arg(long, default_value = "qemu-aarch64-static")]
    qemu: String,
    /// Only the warm-latency part (quick iterations while tuning); no table file is written.
    #[arg(long)]
    warm_only: bool,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "bench-results.json")]
    json: PathBuf,
}

#[derive(Serialize, Default)]
struct Results {
    machine: String,
    warm: Vec<Warm>,
    /// GET /health through the adapter: everything but the database.
    adapter_only_p50_us: f64,
    cold_start: Vec<Cold>,
    peak_rss_kib: u64,
    sizes: Vec<(String, u64)>,
    token_sign_us: f64,
    token_cache_hit_us: f64,
}

#[derive(Serialize)]
struct Warm {
    route: &'static str,
    requests: usize,
    p50_us: f64,
    p99_us: f64,
    floor_p50_us: f64,
    floor_p99_us: f64,
    ratio_p50: f64,
    round_trips_per_request: f64,
}

#[derive(Serialize)]
struct Cold {
    binary: String,
    spawns: usize,
    ready_median_ms: f64,
    ready_max_ms: f64,
    first_response_median_ms: f64,
    first_response_max_ms: f64,
}

const SUBJECT: &str = "bench-user";
/// The function's settings in the benchmark: identity from JWT authorizer claims, quiet logs.
const QUIET: &[(&str, &str)] = &[("IDENTITY_SOURCES", "apigw_jwt"), ("LOG_LEVEL", "warn")];

fn claims_event(method: &str, path: &str, body: Option<&Value>) -> String {
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

fn median_of_slices(times: &[Duration]) -> f64 {
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

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

/// The same statements the store pipelines for a tenant-scoped request, issued directly.
struct Floor {
    client: Client,
    stmts: Vec<Statement>,
}

impl Floor {
    /// One plain connection as the runtime role, with the same session settings as the store's
    /// (the server-side timeouts cost the same on both sides).
    async fn connect(db: &TestDb, session_settings: &str) -> Floor {
        let (client, conn) = tokio_postgres::connect(&db.runtime_url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client.batch_execute(session_settings).await.unwrap();
        let mut stmts = Vec::new();
        for q in Q::ALL {
            stmts.push(client.prepare(q.sql()).await.unwrap());
        }
        Floor { client, stmts }
    }

    /// BEGIN, scope (user, then tenant membership), the statement, COMMIT: sent together.
    async fn run(&self, read: bool, user: Uuid, tenant: Uuid, q: Q, params: &[&(dyn ToSql + Sync)]) -> usize {
        let c = &self.client;
        let none: Vec<Uuid> = Vec::new();
        let (b, s, m, rows, cm) = join5(
            c.batch_execute(if read { "BEGIN READ ONLY" } else { "BEGIN" }),
            c.query(&self.stmts[Q::ScopeSet as usize], &[&user, &none]),
            c.query(&self.stmts[Q::ScopeMember as usize], &[&user, &tenant]),
            c.query(&self.stmts[q as usize], params),
            c.batch_execute("COMMIT"),
        )
        .await;
        b.unwrap();
        s.unwrap();
        m.unwrap();
        cm.unwrap();
        rows.unwrap().len()
    }
}

async fn handle(f: &Function, event: &str) -> u16 {
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

async fn warm(args: &Args, results: &mut Results) {
    let db = testkit::pg::db().await;
    let store = db.runtime_store();
    let f = Function::new(App::new(store.clone()), Identity::with_sources(vec![Source::ApiGatewayJwt], None));

    let tenant = Uuid::new_v4();
    assert_eq!(
        handle(&f, &claims_event("POST", "/api/tenants", Some(&json!({ "name": "bench", "id": tenant })))).await,
        201
    );
    let todos = format!("/api/tenants/{tenant}/todos");
    let one = Uuid::new_v4();
    assert_eq!(handle(&f, &claims_event("POST", &todos, Some(&json!({ "title": "the one", "id": one })))).await, 201);
    for i in 0..19 {
        assert_eq!(
            handle(&f, &claims_event("POST", &todos, Some(&json!({ "title": format!("todo {i}") })))).await,
            201
        );
    }
    let floor = Floor::connect(&db, store.session_settings()).await;
    let user: Uuid = db
        .admin()
        .await
        .query_one("SELECT id FROM users WHERE subject = $1", &[&SUBJECT])
        .await
        .expect("the bench user registered")
        .get(0);
    let start_ts = time_start();
    let nil = Uuid::nil();
    let limit: i64 = 21;
    let complete: Option<bool> = None;
    let title = "a new todo";
    let no_title: Option<&str> = None;

    // What the adapter and the app cost without the database: event parsing, routing,
    // response building.
    let health = claims_event("GET", "/health", None);
    let mut times = Vec::with_capacity(args.requests);
    for n in 0..args.requests + args.requests / 10 {
        let t = Instant::now();
        assert_eq!(handle(&f, &health).await, 200);
        if n >= args.requests / 10 {
            times.push(t.elapsed());
        }
    }
    times.sort();
    results.adapter_only_p50_us = percentile(&times, 0.5);

    let routes: [(&'static str, String, u16); 4] = [
        ("GET todos (20 items)", claims_event("GET", &format!("{todos}?limit=20"), None), 200),
        ("GET one todo", claims_event("GET", &format!("{todos}/{one}"), None), 200),
        ("POST a todo", claims_event("POST", &todos, Some(&json!({ "title": title }))), 201),
        ("PATCH a todo", claims_event("PATCH", &format!("{todos}/{one}"), Some(&json!({ "complete": true }))), 200),
    ];
    for (i, (name, event, status)) in routes.iter().enumerate() {
        let mut app_times = Vec::with_capacity(args.requests);
        let mut floor_times = Vec::with_capacity(args.requests);
        let before = store.stats().round_trips;
        // A tenth of the requests warm caches and plans, unmeasured; before the first route, half
        // as many again, so that the machine has settled (bench.sh has just built and zipped).
        let warmup = args.requests / 10 + if i == 0 { args.requests / 2 } else { 0 };
        let total = args.requests + warmup;
        for n in 0..total {
            let t = Instant::now();
            assert_eq!(handle(&f, event).await, *status, "{name}");
            let app = t.elapsed();
            let t = Instant::now();
            let rows = match i {
                0 => floor.run(true, user, tenant, Q::TodoList, &[&tenant, &complete, &start_ts, &nil, &limit]).await,
                1 => floor.run(true, user, tenant, Q::TodoGet, &[&tenant, &one]).await,
                2 => {
                    let id = Uuid::new_v4();
                    let done = false;
                    floor.run(false, user, tenant, Q::TodoCreate, &[&tenant, &id, &title, &done]).await
                }
                _ => {
                    let done = Some(true);
                    floor.run(false, user, tenant, Q::TodoUpdate, &[&tenant, &one, &no_title, &done]).await
                }
            };
            assert!(rows >= 1);
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
}

fn time_start() -> SystemTime {
    SystemTime::UNIX_EPOCH
}

fn spawn(binary: &Path, runner: Option<&str>, env: &[(String, String)]) -> Child {
    let mut cmd = match runner {
        Some(r) => {
            let mut c = Command::new(r);
            c.arg(binary);
            c
        }
        None => Command::new(binary),
    };
    cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v))).stdout(Stdio::null()).stderr(Stdio::null());
    cmd.spawn().expect("spawn bootstrap")
}

async fn first_response(runtime: &RuntimeApi, event: String) -> u16 {
    match runtime.call(serde_json::from_str(&event).unwrap(), Duration::from_secs(60)).await {
        Some(Outcome::Response(r)) => r["statusCode"].as_u64().unwrap_or(0) as u16,
        other => panic!("no response from bootstrap: {other:?}"),
    }
}

async fn cold(label: &str, binary: &Path, runner: Option<&str>, spawns: usize) -> Cold {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let ca = iam::ca_file(&standin);
    let (mut ready, mut first) = (Vec::new(), Vec::new());
    for _ in 0..spawns {
        let runtime = RuntimeApi::start().await;
        let env = iam::function_env(&runtime.endpoint(), &db, &standin, &ca, QUIET);
        runtime.invoke(serde_json::from_str(&claims_event("GET", "/api/me", None)).unwrap());
        let started = Instant::now();
        let mut child = spawn(binary, runner, &env);
        while runtime.polls() < 2 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        // The first poll got the queued event; the second means it was answered.
        let answered = started.elapsed();
        ready.push(runtime.first_poll().unwrap() - started);
        first.push(answered);
        let _ = child.kill();
        let _ = child.wait();
    }
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    ready.sort();
    first.sort();
    Cold {
        binary: label.to_string(),
        spawns,
        ready_median_ms: ms(&ready[spawns / 2]),
        ready_max_ms: ms(ready.last().unwrap()),
        first_response_median_ms: ms(&first[spawns / 2]),
        first_response_max_ms: ms(first.last().unwrap()),
    }
}

async fn peak_rss(binary: &Path) -> u64 {
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let ca = iam::ca_file(&standin);
    let runtime = RuntimeApi::start().await;
    let mut child = spawn(binary, None, &iam::function_env(&runtime.endpoint(), &db, &standin, &ca, QUIET));
    let tenant = Uuid::new_v4();
    assert_eq!(
        first_response(&runtime, claims_event("POST", "/api/tenants", Some(&json!({ "name": "rss", "id": tenant }))))
            .await,
        201
    );
    let todos = format!("/api/tenants/{tenant}/todos");
    for i in 0..1000 {
        let event = match i % 4 {
            0 => claims_event("POST", &todos, Some(&json!({ "title": format!("todo {i}") }))),
            1 => claims_event("GET", &format!("{todos}?limit=50"), None),
            2 => claims_event("GET", "/api/me", None),
            _ => claims_event("GET", "/api/todos?limit=200", None),
        };
        let status = first_response(&runtime, event).await;
        assert!(status == 200 || status == 201, "request {i}: {status}");
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    hwm
}

fn tokens(results: &mut Results) {
    let creds = iam_standin::test_credentials();
    let req = TokenRequest::rds(iam::HOST, 5432, "app_runtime", iam::REGION);
    let n = 20_000;
    let now = SystemTime::now();
    for _ in 0..1000 {
        std::hint::black_box(db_auth::sign(&req, &creds, now).unwrap());
    }
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(db_auth::sign(&req, &creds, now).unwrap());
    }
    results.token_sign_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cache = TokenCache::new(db_auth::SharedCredentialsProvider::new(creds));
    rt.block_on(async {
        cache.token(&req).await.unwrap();
        let n = 200_000;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(cache.token(&req).await.unwrap());
        }
        results.token_cache_hit_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    });
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cpu}, {cores} cores, {}", std::env::consts::ARCH)
}

fn main() {
    let args = Args::parse();
    let mut results = Results { machine: machine(), ..Default::default() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    eprintln!("warm latency: {} requests per route ...", args.requests);
    rt.block_on(warm(&args, &mut results));
    if args.warm_only {
        print_table(&results);
        return;
    }
    // The stand-ins run on their own threads so that the spawned process is served promptly.
    let mt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    eprintln!("cold start: {} spawns ...", args.spawns);
    results.cold_start.push(mt.block_on(cold("x86_64 (native)", &args.bootstrap, None, args.spawns)));
    if let Some(arm) = &args.arm64_bootstrap {
        results.cold_start.push(mt.block_on(cold("arm64 under qemu", arm, Some(&args.qemu), args.spawns)));
    }
    eprintln!("peak RSS after 1,000 requests ...");
    results.peak_rss_kib = mt.block_on(peak_rss(&args.bootstrap));
    results.sizes.push(("bootstrap x86_64".into(), size(&args.bootstrap)));
    if let Some(z) = &args.zip {
        results.sizes.push(("zip x86_64".into(), size(z)));
    }
    if let Some(b) = &args.arm64_bootstrap {
        results.sizes.push(("bootstrap arm64".into(), size(b)));
    }
    if let Some(z) = &args.arm64_zip {
        results.sizes.push(("zip arm64".into(), size(z)));
    }
    eprintln!("token signing ...");
    tokens(&mut results);
    print_table(&results);
    std::fs::write(&args.json, serde_json::to_string_pretty(&results).unwrap() + "\n").unwrap();
    eprintln!("wrote {}", args.json.display());
}

fn print_table(r: &Results) {
    println!("machine: {}\n", r.machine);
    println!("| route | p50 µs | p99 µs | floor p50 µs | floor p99 µs | p50 ratio | round trips |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for w in &r.warm {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}x | {:.2} |",
            w.route, w.p50_us, w.p99_us, w.floor_p50_us, w.floor_p99_us, w.ratio_p50, w.round_trips_per_request
        );
    }
    println!("\nadapter and app without the database (GET /health): p50 {:.1} µs", r.adapter_only_p50_us);
    println!(
        "\n| cold start | spawns | ready median ms | ready max ms | first response median ms | first response max ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for c in &r.cold_start {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            c.binary, c.spawns, c.ready_median_ms, c.ready_max_ms, c.first_response_median_ms, c.first_response_max_ms
        );
    }
    println!("\n| other | value |");
    println!("|---|---:|");
    println!("| peak RSS of bootstrap after 1,000 requests | {:.1} MiB |", r.peak_rss_kib as f64 / 1024.0);
    for (name, bytes) in &r.sizes {
        println!("| {name} | {:.2} MiB |", *bytes as f64 / 1048576.0);
    }
    println!("| token signing | {:.1} µs |", r.token_sign_us);
    println!("| token cache hit | {:.3} µs |", r.token_cache_hit_us);
}
