//! A dedicated tenant beside a pooled one (silo tenants, docs/silo.md): one function, one tenant
//! of 20 todos in the control database and one moved to a dedicated database in a second
//! cluster, each reached through its own IAM-auth stand-in; the same routes on each, requests
//! interleaved one by one, with the placement cached (warm).

use std::time::{Duration, Instant};

use lambda::Function;
use store::{Store, TenantId, placement::mover::Direction};
use testkit::silo::Silo;

use crate::{
    Args, Results,
    warm::{Setup, handle, median_of_slices, routes, seed},
};

/// One route for both tenants.
#[derive(serde::Serialize)]
pub(crate) struct PlacementPair {
    pub route: &'static str,
    pub requests: usize,
    pub pooled_p50_us: f64,
    pub dedicated_p50_us: f64,
    /// The dedicated tenant's p50 over the pooled one's (budget: 1.10x).
    pub ratio_p50: f64,
    pub pooled_round_trips_per_request: f64,
    pub dedicated_round_trips_per_request: f64,
}

async fn timed(f: &Function, route: &(&'static str, String, u16), n: usize) -> Duration {
    let (name, event, status) = route;
    let event = Setup::event(event, n);
    let t = Instant::now();
    assert_eq!(handle(f, &event).await, *status, "{name}");
    t.elapsed()
}

/// Runs `route` `n` times; the time of each and the round trips per request.
async fn measure(
    f: &Function,
    store: &Store,
    route: &(&'static str, String, u16),
    from: usize,
    into: &mut Vec<Duration>,
) -> u64 {
    let before = store.stats().round_trips;
    into.push(timed(f, route, from).await);
    store.stats().round_trips - before
}

pub(crate) async fn placements(args: &Args, results: &mut Results) {
    let silo = Silo::new().await;
    let store = silo.instance();
    let f = crate::warm::function(store.clone());
    let (_, pooled_todos, pooled_one) = seed(&f).await;
    let (dedicated, dedicated_todos, dedicated_one) = seed(&f).await;
    silo.move_to(TenantId(dedicated), Direction::ToDedicated, &Default::default()).await.expect("move the tenant");
    let pooled = routes(&pooled_todos, pooled_one);
    let placed = routes(&dedicated_todos, dedicated_one);
    for (i, route) in pooled.iter().enumerate() {
        // Unmeasured warm-up: the placement, the membership copy, the connections, the plans.
        let warmup = args.requests / 10 + if i == 0 { args.requests / 4 } else { 0 };
        for n in 0..warmup {
            timed(&f, route, n).await;
            timed(&f, &placed[i], n).await;
        }
        let connects = store.stats().connects;
        let (mut p_times, mut d_times) = (Vec::with_capacity(args.requests), Vec::with_capacity(args.requests));
        let (mut p_trips, mut d_trips) = (0, 0);
        for n in warmup..warmup + args.requests {
            // Each first in turn, so that noise and any advantage of going first fall on both.
            if n % 2 == 0 {
                p_trips += measure(&f, &store, route, n, &mut p_times).await;
                d_trips += measure(&f, &store, &placed[i], n, &mut d_times).await;
            } else {
                d_trips += measure(&f, &store, &placed[i], n, &mut d_times).await;
                p_trips += measure(&f, &store, route, n, &mut p_times).await;
            }
        }
        assert_eq!(store.stats().connects, connects, "{}: no reconnect while measured", route.0);
        let per_request = |trips: u64| trips as f64 / args.requests as f64;
        let (pooled_p50_us, dedicated_p50_us) = (median_of_slices(&p_times), median_of_slices(&d_times));
        let pair = PlacementPair {
            route: route.0,
            requests: args.requests,
            pooled_p50_us,
            dedicated_p50_us,
            ratio_p50: dedicated_p50_us / pooled_p50_us,
            pooled_round_trips_per_request: per_request(p_trips),
            dedicated_round_trips_per_request: per_request(d_trips),
        };
        // A dedicated tenant's todo routes send their rate-limit leases alone (README: Plans and
        // limits): one round trip more per lease, and leases double up to burst / 8 requests.
        assert!(
            pair.pooled_round_trips_per_request == 1.0 && pair.dedicated_round_trips_per_request <= 1.02,
            "{}: one round trip per request pooled, and at most 2% more for leases dedicated (warm): {:.3}",
            route.0,
            pair.dedicated_round_trips_per_request
        );
        results.placements.push(pair);
    }
}

pub(crate) fn print_table(pairs: &[PlacementPair]) {
    if pairs.is_empty() {
        return;
    }
    println!(
        "\na dedicated tenant beside a pooled one (silo tenants, placement cached), interleaved, each database \
         through its own IAM stand-in (budget: within 1.10x)\n"
    );
    println!(
        "| route | pooled p50 µs | dedicated p50 µs | dedicated / pooled | round trips pooled | round trips dedicated |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for p in pairs {
        println!(
            "| {} | {:.0} | {:.0} | {:.2}x | {:.2} | {:.2} |",
            p.route,
            p.pooled_p50_us,
            p.dedicated_p50_us,
            p.ratio_p50,
            p.pooled_round_trips_per_request,
            p.dedicated_round_trips_per_request
        );
    }
}
