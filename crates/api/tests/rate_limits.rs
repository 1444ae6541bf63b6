//! Per-tenant and per-caller rate limits (issue 24, `crates/limits`, `store::lease`): one budget
//! per tenant across instances, admitted within the stated bound; refusals that cost no
//! database round trip; 429 with the headers of draft-ietf-httpapi-ratelimit-headers-09; a
//! tenant under its limit at one round trip per request.
//!
//! Runs on PostgreSQL and on DSQL (`TEST_DB_ENGINE=dsql`). Every instance here is another
//! `App` on the same database with its own connection, as Lambda instances are. On a
//! current-thread runtime, as `round_trips.rs`: the store counts a round trip each time the
//! client writes after it read, and a connection task on another thread may start answering
//! a pipeline's first messages while its last ones are still being written.

mod common;

use std::time::{Duration, Instant};

use common::{Reply, TestApp};
use futures_util::future::join_all;
use http::StatusCode;
use serde_json::json;

/// The default plan at `rate` requests a second with `burst`, every quota generous.
fn plans(rate: f64, burst: u32) -> limits::Plans {
    limits::Plans::from_json(&format!(
        r#"{{"default": "metered", "plans": {{"metered": {{"rate": {rate}, "burst": {burst}, "todos": 100000,
             "members": 100, "pending_invitations": 100, "tenants_per_user": 100}}}}}}"#
    ))
    .unwrap()
}

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The fields as the draft writes them: a List of one String item, `"default"`, with Integer
/// parameters `q` and `w` (policy) or `r` and `t` (limit), as RFC 9651 serializes them.
fn assert_draft_headers(r: &Reply, burst: u32) {
    let policy = header(r, "ratelimit-policy").unwrap_or_else(|| panic!("RateLimit-Policy on {r:?}"));
    let re = regex::Regex::new(r#"^"default";q=(\d{1,15});w=(\d{1,15})$"#).unwrap();
    let caps = re.captures(policy).unwrap_or_else(|| panic!("RateLimit-Policy syntax: {policy}"));
    assert_eq!(caps[1].parse::<u32>().unwrap(), burst, "q is the burst: {policy}");
    assert!(caps[2].parse::<u64>().unwrap() >= 1, "w is at least a second: {policy}");
    let limit = header(r, "ratelimit").unwrap_or_else(|| panic!("RateLimit on {r:?}"));
    let re = regex::Regex::new(r#"^"default";r=(\d{1,15});t=(\d{1,15})$"#).unwrap();
    let caps = re.captures(limit).unwrap_or_else(|| panic!("RateLimit syntax: {limit}"));
    assert!(caps[1].parse::<u32>().unwrap() <= burst, "r is at most the burst: {limit}");
}

#[tokio::test]
async fn a_tenant_under_its_limit_sees_no_429_and_one_round_trip_per_request() {
    let app = TestApp::with_plans(plans(1000.0, 8000)).await;
    let t = app.tenant("alice", "one").await;
    let path = format!("/api/tenants/{t}/todos");
    app.post("alice", &path, json!({"title": "first"})).await;
    let before = app.app.store().stats();
    for i in 0..30 {
        let r = if i % 3 == 0 {
            app.post("alice", &path, json!({"title": format!("todo {i}")})).await
        } else {
            app.get("alice", &path).await
        };
        assert!(r.status.is_success(), "{i}: {r:?}");
        assert_draft_headers(&r, 8000);
    }
    let after = app.app.store().stats();
    assert_eq!(after.round_trips - before.round_trips, 30, "the leases rode along with the requests");
}

#[tokio::test]
async fn refusals_carry_the_drafts_headers_and_cost_no_round_trip() {
    // 2 a second, burst 4: a lease is 1 request (burst / 8, at least 1).
    let app = TestApp::with_plans(plans(2.0, 4)).await;
    let t = app.tenant("alice", "one").await;
    let path = format!("/api/tenants/{t}/todos");
    let before = app.app.store().stats();
    let started = Instant::now();
    let mut replies = Vec::new();
    for _ in 0..20 {
        replies.push(app.get("alice", &path).await);
    }
    let elapsed = started.elapsed();
    let after = app.app.store().stats();
    let admitted = replies.iter().filter(|r| r.status == StatusCode::OK).count();
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(admitted + refused.len(), 20, "only 200 and 429: {replies:?}");
    // The tenant's first request spends the caller's budget (membership is not known yet), the
    // rest the tenant's: one GCRA of each, plus a lease (1) and the credit (2) per key and
    // instance.
    let bound = 2 * (4 + 1 + 2) + (elapsed.as_secs_f64() / 0.5).ceil() as usize;
    assert!(admitted <= bound, "{admitted} admitted in {elapsed:?}, bound {bound}");
    assert!(admitted >= 4, "the burst is admitted: {admitted}");
    for r in &refused {
        assert_eq!(r.error_code(), "rate_limited");
        assert_draft_headers(r, 4);
        let retry: u64 = header(r, "retry-after").expect("Retry-After on 429").parse().expect("delay-seconds");
        assert!((1..=2).contains(&retry), "Retry-After {retry}");
    }
    // With an Idempotency-Key too: a refusal leaves no record to drop, and costs nothing.
    let before_keyed = app.app.store().stats().round_trips;
    let (r, _, _) = app.keyed("alice", http::Method::POST, &path, Some(json!({"title": "x"})), "k-429").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    assert_eq!(app.app.store().stats().round_trips, before_keyed, "a keyed refusal reached the database");
    // Admitted requests cost one round trip each, and a lease sent alone one more; a refusal
    // the instance already knew of costs nothing.
    let trips = (after.round_trips - before.round_trips) as usize;
    assert!(trips <= 2 * admitted, "{trips} round trips for {admitted} admitted and {} refused", refused.len());
    assert!(trips < 20, "the refusals reached the database: {trips} round trips");
}

#[tokio::test]
async fn a_tenant_at_ten_times_its_rate_across_instances_stays_within_the_bound() {
    // 20 a second (T = 50 ms), burst 16: a lease is at most 2 requests; credit 2 (api's).
    let (rate, burst, max_lease, credit) = (20.0, 16_usize, 2_usize, 2_usize);
    let app = TestApp::with_plans(plans(rate, burst as u32)).await;
    let t = app.tenant("alice", "noisy").await;
    let path = format!("/api/tenants/{t}/todos");
    let instances: Vec<TestApp> = (0..3).map(|_| app.another()).collect();
    // Each instance learns that alice is a member (its first request spends her own budget).
    for i in &instances {
        assert_eq!(i.get("alice", &format!("/api/tenants/{t}")).await.status, StatusCode::OK);
    }
    let trips_before: u64 = instances.iter().map(|i| i.app.store().stats().round_trips).sum();
    let window = Duration::from_millis(1500);
    let started = Instant::now();
    // 10x the rate in all: each of the 3 instances offers a request every 15 ms.
    let runs = instances.iter().map(|i| {
        let path = path.clone();
        async move {
            let (mut ok, mut refused) = (0_usize, 0_usize);
            while started.elapsed() < window {
                let r = i.get("alice", &path).await;
                match r.status {
                    StatusCode::OK => ok += 1,
                    StatusCode::TOO_MANY_REQUESTS => refused += 1,
                    other => panic!("{other}: {r:?}"),
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            (ok, refused)
        }
    });
    let counts = join_all(runs).await;
    let elapsed = started.elapsed();
    let admitted: usize = counts.iter().map(|c| c.0).sum();
    let refused: usize = counts.iter().map(|c| c.1).sum();
    let trips: u64 = instances.iter().map(|i| i.app.store().stats().round_trips).sum::<u64>() - trips_before;
    // The stated bound (crates/limits): floor(W / T) + B + K (max_lease + credit), W the
    // window on the database's clock, which lies within the test's.
    let bound = (elapsed.as_secs_f64() * rate).floor() as usize + burst + 3 * (max_lease + credit);
    println!("admitted {admitted}, refused {refused}, {trips} round trips in {elapsed:?}; bound {bound}");
    assert!(admitted <= bound, "{admitted} admitted in {elapsed:?}: over the bound {bound}");
    assert!(admitted >= burst, "the burst at least: {admitted}");
    assert!(refused > 0, "the tenant was over its rate");
    // Refused requests cost no round trip of their own: what the database saw is what was
    // admitted, plus leases sent alone (at most one per admitted request).
    assert!(trips as usize <= 2 * admitted, "{trips} round trips for {admitted} admitted, {refused} refused");
}

#[tokio::test]
async fn routes_outside_a_tenant_are_limited_per_caller_and_a_stranger_cannot_spend_a_tenants_budget() {
    let app = TestApp::with_plans(plans(2.0, 4)).await;
    let t = app.tenant("alice", "one").await;
    // bob names alice's tenant: 404s, spent from bob's own budget, until bob is refused.
    let mut bob = Vec::new();
    app.user_id("carol").await;
    for _ in 0..12 {
        bob.push(app.get("bob", &format!("/api/tenants/{t}/todos")).await.status);
    }
    assert!(bob.contains(&StatusCode::NOT_FOUND) && bob.contains(&StatusCode::TOO_MANY_REQUESTS), "{bob:?}");
    // alice's tenant still has its burst.
    for _ in 0..3 {
        let r = app.get("alice", &format!("/api/tenants/{t}/todos")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
    // /api/me is per caller.
    let me: Vec<StatusCode> =
        join_all((0..12).map(|_| app.get("carol", "/api/me"))).await.iter().map(|r| r.status).collect();
    assert!(me.contains(&StatusCode::TOO_MANY_REQUESTS), "{me:?}");
    let r = app.get("dave", "/api/me").await;
    assert_eq!(r.status, StatusCode::OK, "another caller is not limited by carol: {r:?}");
}
