//! Every connection to Redis reset (RST) in the middle of calls, again and
//! again: no panic, no route past the bound, and the fleet works on after.

use std::time::{Duration, Instant};

use fleet_breaker::CircuitState;

use crate::common::{
    Path, RECOVERY_BOUND, ROUTE_BOUND, TIMEOUT, World, agreed, all_see_agent_1_open, fleet,
    on_loopback, serial,
};
use crate::load::{Load, Samples, assert_routes_bounded_and_served};
use crate::support::{TestRedis, unique_prefix, wait_until};

const PODS: usize = 4;
const RESETS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reset_mid_call_cost_at_most_the_timeout_and_the_fleet_recovers() {
    let _serial = serial().await;
    let redis = TestRedis::start().await;
    if !on_loopback(&redis) {
        return;
    }
    let world = World::new();
    let pods = fleet(
        &redis,
        &unique_prefix("faults-reset"),
        PODS,
        Path::Proxied,
        &world,
    )
    .await;
    let load = Load::start(&pods);
    load.each_routes(3, Duration::from_secs(2)).await;

    let first_reset = Instant::now();
    let mut reset = 0;
    let mut last_reset = first_reset;
    for _ in 0..RESETS {
        // Each round hits live connections: the watcher's subscription and
        // at least one of the pool's, reopened since the last round.
        wait_until(
            "every pod has its connections back",
            Duration::from_secs(2),
            || async { pods.iter().all(|p| p.proxy().connections() >= 2) },
        )
        .await;
        reset += pods.iter().map(|p| p.proxy().connections()).sum::<usize>();
        pods.iter().for_each(|p| p.proxy().reset_all());
        last_reset = Instant::now();
        // The pace of the resets, part of the scenario: the fleet routes
        // and reconnects for 100 ms before the next round.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until(
        "every pod is out of degraded mode and watching again",
        RECOVERY_BOUND,
        || async {
            pods.iter()
                .all(|p| !p.breaker().is_degraded() && p.breaker().is_watching())
        },
    )
    .await;
    let recovered_after = last_reset.elapsed();

    // The fleet still works together: agent-1 fails, and opens for everyone.
    world.set_agent_1_down(true);
    all_see_agent_1_open(&pods).await;
    let samples = load.stop().await;

    assert_routes_bounded_and_served(&samples, "connection resets");
    let views = agreed(&pods, Duration::from_secs(2)).await;
    assert_eq!(
        (views[0].state, views[0].generation),
        (CircuitState::Open, 1),
        "agent-1 opened once, fleet-wide"
    );
    let during = samples.during(first_reset, last_reset);
    let worst = Samples::slowest(&during).expect("routes ran").took;
    let degraded: u64 = pods
        .iter()
        .map(|p| p.breaker().store_stats().degraded_entered)
        .sum();
    eprintln!(
        "faults/reset: {PODS} pods, {RESETS} rounds of RST on every connection ({reset} \
         connections reset), store timeout {TIMEOUT:?}: worst route during the resets \
         {worst:?} over {} routes (bound \
         {ROUTE_BOUND:?}); degraded mode entered {degraded} times in all; every pod healthy and \
         watching {recovered_after:?} after the last reset",
        during.len()
    );
}
