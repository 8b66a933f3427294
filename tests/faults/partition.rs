//! One pod cut off from Redis while the rest of the fleet stays connected:
//! it degrades alone, decides locally meanwhile, and on heal converges to
//! what the fleet decided without it. Health says so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_breaker::CircuitState;

use crate::common::{
    AGENT_1, AGENT_2, Path, Pod, RECOVERY_BOUND, ROUTE_BOUND, TIMEOUT, World, agreed, fleet, id,
    on_loopback, serial,
};
use crate::load::{Load, Samples, assert_routes_bounded_and_served};
use crate::support::{TestRedis, unique_prefix, wait_until};

/// The connected pods.
const OTHERS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_pod_degrades_alone_and_on_heal_converges_to_the_fleets_state() {
    let _serial = serial().await;
    let redis = TestRedis::start().await;
    if !on_loopback(&redis) {
        return;
    }
    let prefix = unique_prefix("faults-partition");
    // From the partitioned pod's side of the network, agent-1 works; the
    // rest of the fleet will see it fail.
    let lonely_world = World::new();
    let lonely = Arc::new(Pod::start(&redis, &prefix, "lonely", Path::Proxied, lonely_world).await);
    let world = World::new();
    let others = fleet(&redis, &prefix, OTHERS, Path::Proxied, &world).await;
    let everyone: Vec<Arc<Pod>> = std::iter::once(Arc::clone(&lonely))
        .chain(others.iter().cloned())
        .collect();
    let load = Load::start(&everyone);
    load.each_routes(3, Duration::from_secs(2)).await;

    let cut_at = Instant::now();
    lonely.proxy().blackhole();
    wait_until(
        "the partitioned pod degrades",
        Duration::from_secs(4),
        || async { lonely.breaker().is_degraded() },
    )
    .await;
    let degraded_after = cut_at.elapsed();

    // The fleet opens agent-1, an operator resets it, and it opens again:
    // generation 3, which the partitioned pod never saw.
    world.set_agent_1_down(true);
    let fleet_sees = async |state: CircuitState, generation: u64| {
        wait_until(
            &format!("the connected pods see agent-1 {state} at generation {generation}"),
            Duration::from_secs(2),
            || async {
                others
                    .iter()
                    .all(|p| p.cached(AGENT_1) == Some((state, generation)))
            },
        )
        .await;
    };
    fleet_sees(CircuitState::Open, 1).await;
    others[0]
        .router
        .reset_agent(AGENT_1)
        .await
        .expect("admin reset");
    fleet_sees(CircuitState::Open, 3).await;
    // The partitioned pod tries Redis again (its prober's ping fails) after
    // the fleet knows: it has had its chance to learn, and must not have.
    let errors = lonely.breaker().store_stats().errors;
    wait_until(
        "the partitioned pod fails another store call",
        Duration::from_secs(2),
        || async { lonely.breaker().store_stats().errors > errors },
    )
    .await;
    assert!(lonely.breaker().is_degraded(), "still cut off");
    assert!(
        others.iter().all(|p| !p.breaker().is_degraded()),
        "only the partitioned pod degrades"
    );
    assert_ne!(
        lonely.cached(AGENT_1),
        Some((CircuitState::Open, 3)),
        "the partitioned pod cannot know yet"
    );

    let healed_at = Instant::now();
    lonely.proxy().heal();
    wait_until(
        "the healed pod leaves degraded mode and holds the fleet's agent-1",
        RECOVERY_BOUND,
        || async {
            !lonely.breaker().is_degraded()
                && lonely.cached(AGENT_1) == Some((CircuitState::Open, 3))
        },
    )
    .await;
    let converged_after = healed_at.elapsed();
    let converged_at = Instant::now();
    // Routes of the rejoined pod, begun after it converged (the first one
    // ending may have begun before).
    load.routes_of_pod("lonely", 4, Duration::from_secs(2))
        .await;
    let samples = load.stop().await;

    assert_routes_bounded_and_served(&samples, "partition");
    let lonely_routes = |from: Instant, to: Instant| -> Vec<AgentIdOrErr> {
        samples
            .during(from, to)
            .into_iter()
            .filter(|s| s.pod == "lonely" && s.started >= from)
            .map(|s| s.result.clone())
            .collect()
    };
    let cut_off = lonely_routes(cut_at + degraded_after, healed_at);
    assert!(
        !cut_off.is_empty() && cut_off.iter().all(|r| *r == Ok(id(AGENT_1))),
        "cut off, the pod decides alone: agent-1 serves it, so it keeps calling agent-1"
    );
    let rejoined = lonely_routes(converged_at, Instant::now());
    assert!(
        !rejoined.is_empty() && rejoined.iter().all(|r| *r == Ok(id(AGENT_2))),
        "rejoined, it follows the fleet: agent-1 is open, agent-2 serves: {rejoined:?}"
    );
    for pod in &others {
        assert_eq!(
            pod.breaker().store_stats().degraded_entered,
            0,
            "{} never degraded",
            pod.name
        );
    }
    let stats = lonely.breaker().store_stats();
    assert_eq!((stats.degraded_entered, stats.degraded_left), (1, 1));
    let views = agreed(&everyone, Duration::from_secs(2)).await;
    assert_eq!(
        (views[0].state, views[0].generation),
        (CircuitState::Open, 3)
    );
    let cut_samples: Vec<_> = samples
        .during(cut_at, healed_at)
        .into_iter()
        .filter(|s| s.pod == "lonely")
        .collect();
    let worst_cut = Samples::slowest(&cut_samples).expect("routes ran").took;
    eprintln!(
        "faults/partition: 1 of {} pods blackholed, store timeout {TIMEOUT:?}: it degraded \
         {degraded_after:?} after the cut; its worst route while cut off {worst_cut:?} (bound \
         {ROUTE_BOUND:?}); on heal it left degraded mode holding the fleet's agent-1 \
         (open, generation 3) after {converged_after:?}",
        OTHERS + 1
    );
}

type AgentIdOrErr = Result<fleet_breaker::AgentId, String>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_the_store_is_degraded_while_cut_off_and_ok_after_heal() {
    let _serial = serial().await;
    let redis = TestRedis::start().await;
    if !on_loopback(&redis) {
        return;
    }
    let world = World::new();
    let pod = Pod::start(
        &redis,
        &unique_prefix("faults-health"),
        "pod-0",
        Path::Proxied,
        world,
    )
    .await;
    pod.route(0).await.expect("served");
    let store_field = async || {
        let health = tokio::time::timeout(Duration::from_secs(1), pod.router.health_status())
            .await
            .expect("health answers within 1 s, Redis or not")
            .expect("health answers, Redis or not");
        serde_json::to_value(&health).expect("health serialises")["store"].clone()
    };
    assert_eq!(store_field().await, "ok");

    pod.proxy().blackhole();
    let mut task = 1;
    wait_until("the pod degrades", Duration::from_secs(4), || {
        task += 1;
        let pod = &pod;
        async move {
            let _ = pod.route(task).await;
            pod.breaker().is_degraded()
        }
    })
    .await;
    assert_eq!(store_field().await, "degraded");

    pod.proxy().heal();
    wait_until("the pod leaves degraded mode", RECOVERY_BOUND, || async {
        !pod.breaker().is_degraded()
    })
    .await;
    assert_eq!(store_field().await, "ok");
}
