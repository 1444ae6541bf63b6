//! The benchmark (not a test: timings depend on the machine). One run prints a table and writes
//! it as JSON:
//!
//! - warm latency (p50, p99) of sequential requests through the Lambda adapter in-process
//!   (event JSON -> `lambda::Function::handle` -> response), for four routes, beside the floor:
//!   the same SQL statements, pipelined the same way, issued directly with tokio-postgres on one
//!   connection; and their ratio;
//! - database round trips per request (counted by the store, not timed);
//! - the Aurora DSQL path beside the Aurora path (`engines`): the same routes on each engine's
//!   schema and statements, both through the IAM-auth stand-in, interleaved; p50s, their ratio
//!   (the only meaningful figure: the stand-in is a local relay) and round trips per request,
//!   plus the first page of a tenant of 5,000 todos;
//! - a dedicated tenant beside a pooled one (`placements`, silo tenants): the same routes, the
//!   dedicated tenant's database in a second cluster behind its own IAM stand-in; p50s, their
//!   ratio (budget 1.10x) and round trips per request;
//! - cold start of the release `bootstrap` through the Runtime API stand-in and the IAM-auth
//!   stand-in: spawn to first `next` poll (process ready) and to first response (TLS, token,
//!   login, statements prepared); natively, and for arm64 under qemu when given;
//! - peak RSS of `bootstrap` after 1,000 requests; binary and zip sizes;
//! - token signing time and token-cache hit time.
//!
//! Run it with `scripts/bench.sh`, which builds what it needs.

mod cold;
mod count;
mod engines;
mod noisy;
mod placements;
mod warm;

use std::{
    path::{Path, PathBuf},
    time::{Instant, SystemTime},
};

use clap::Parser;
use db_auth::{TokenCache, TokenRequest};
use serde::Serialize;
use testkit::iam;

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
    /// Only the noisy-neighbour run (issue 24); no table file is written.
    #[arg(long)]
    noisy_only: bool,
    /// Also count instructions per request and route with valgrind's callgrind (slow; needs
    /// valgrind).
    #[arg(long)]
    instructions: bool,
    /// Internal: the counted run of one route (see `count`).
    #[arg(long, hide = true)]
    count_route: Option<usize>,
    #[arg(long, hide = true, value_enum, default_value = "app")]
    count_side: count::Side,
    #[arg(long, hide = true, default_value_t = 0)]
    count_requests: usize,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "bench-results.json")]
    json: PathBuf,
}

#[derive(Serialize, Default)]
struct Results {
    machine: String,
    warm: Vec<Warm>,
    /// The DSQL path beside the Aurora path, per route (only the ratios mean anything).
    engines: Vec<engines::EnginePair>,
    /// A dedicated tenant beside a pooled one, per route.
    placements: Vec<placements::PlacementPair>,
    /// The plain POST's p50 and the keyed POST's, interleaved request by request.
    keyed: Option<(f64, f64)>,
    /// GET /health through the adapter: everything but the database.
    adapter_only_p50_us: f64,
    cold_start: Vec<Cold>,
    peak_rss_kib: u64,
    sizes: Vec<(String, u64)>,
    token_sign_us: f64,
    token_cache_hit_us: f64,
    /// p50 of a warm request and of one that must reconnect first, in ms, through the IAM
    /// stand-in (TLS, token from the cache, login, prepares).
    reconnect_ms: Option<(f64, f64)>,
    /// Route, instructions per request through the function, and the floor's.
    instructions: Vec<(&'static str, f64, f64)>,
    /// Four quiet tenants beside one at ten times its rate (issue 24).
    noisy: Option<noisy::Noisy>,
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
    if let Some(route) = args.count_route {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(count::child(route, args.count_side, args.count_requests));
        return;
    }
    let mut results = Results { machine: machine(), ..Default::default() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    if args.noisy_only {
        eprintln!("the noisy neighbour ...");
        noisy::print_table(&rt.block_on(noisy::noisy()));
        return;
    }
    eprintln!("warm latency: {} requests per route ...", args.requests);
    rt.block_on(warm::warm(&args, &mut results));
    eprintln!("the DSQL path beside the Aurora path: {} requests per route and path ...", args.requests);
    rt.block_on(engines::engines(&args, &mut results));
    eprintln!("a dedicated tenant beside a pooled one: {} requests per route and tenant ...", args.requests);
    rt.block_on(placements::placements(&args, &mut results));
    eprintln!("the noisy neighbour: four quiet tenants beside one at ten times its rate ...");
    results.noisy = Some(rt.block_on(noisy::noisy()));
    if args.instructions {
        eprintln!("instructions per request (callgrind) ...");
        let routes: Vec<&'static str> = results.warm.iter().map(|w| w.route).collect();
        results.instructions = count::instructions(&routes);
    }
    if args.warm_only {
        print_table(&results);
        return;
    }
    // The stand-ins run on their own threads so that the spawned process is served promptly.
    let mt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    eprintln!("cold start: {} spawns ...", args.spawns);
    results.cold_start.push(mt.block_on(cold::cold("x86_64 (native)", &args.bootstrap, None, args.spawns)));
    if let Some(arm) = &args.arm64_bootstrap {
        results.cold_start.push(mt.block_on(cold::cold("arm64 under qemu", arm, Some(&args.qemu), args.spawns)));
    }
    eprintln!("peak RSS after 1,000 requests ...");
    results.peak_rss_kib = mt.block_on(cold::peak_rss(&args.bootstrap));
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
    eprintln!("reconnect after an idle session ...");
    results.reconnect_ms = Some(mt.block_on(cold::reconnect(50)));
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
    if let Some((plain, keyed)) = r.keyed {
        println!(
            "POST with an Idempotency-Key beside the plain POST, interleaved: p50 {keyed:.0} µs and {plain:.0} µs, {:.2}x \
             (budget: within 1.15x)",
            keyed / plain
        );
    }
    if let Some((warm, reconnect)) = r.reconnect_ms {
        println!(
            "a request that reconnects (after the server closed an idle session; TLS, cached token, login, prepares): \
             p50 {reconnect:.2} ms, against {warm:.2} ms warm, through the IAM stand-in"
        );
    }
    engines::print_table(&r.engines);
    placements::print_table(&r.placements);
    if let Some(n) = &r.noisy {
        noisy::print_table(n);
    }
    if !r.instructions.is_empty() {
        println!("\n| route | instructions per request | floor's | ratio |");
        println!("|---|---:|---:|---:|");
        for (route, app, floor) in &r.instructions {
            println!("| {route} | {app:.0} | {floor:.0} | {:.2}x |", app / floor);
        }
    }
    if r.cold_start.is_empty() && r.peak_rss_kib == 0 {
        return; // --warm-only
    }
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
