//! Redis gone for the whole fleet: killed, blackholed, or slower than the
//! timeout, under load from eight pods. Routing carries on within bounds,
//! the pods degrade, and when Redis is back every pod leaves degraded mode
//! within 2 s and agrees with Redis again.

use std::time::{Duration, Instant};

use fleet_breaker::{CircuitState, StoreStatus};

use crate::common::{
    AGENT_1, AGENT_2, DEGRADE_AFTER, DEGRADED_ROUTE_BOUND, Path, ROUTE_BOUND, TIMEOUT, World,
    agreed, all_degraded, all_recovered, all_see_agent_1_open, fleet, id, on_loopback, serial,
};
use crate::load::{Load, Samples, assert_degraded_routes_fast, assert_routes_bounded_and_served};
use crate::support::{TestRedis, unique_prefix, wait_until};

const PODS: usize = 8;

/// What goes wrong with Redis.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL the server; restart it (empty) to end the outage.
    Kill,
    /// Every pod's proxy forwards nothing; heal to end it.
    Blackhole,
    /// Every pod's proxy adds this much each way; heal to end it.
    Slow(Duration),
}

/// When agent-1 goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agent1Down {
    /// Before the fault: its circuit is open fleet-wide, and in every pod's
    /// cache, when Redis goes; each pod's local fallback must keep it open,
    /// so it is never called during the outage.
    BeforeTheFault,
    /// With the fault: each pod's local fallback has to find out alone, and
    /// the failures it sees cost no store call once the pod is degraded.
    WithTheFault,
}

/// What one outage measured.
#[derive(Debug)]
struct Figures {
    worst_during_outage: Duration,
    routes_during_outage: usize,
    degraded_routes: usize,
}

async fn outage(redis: &mut TestRedis, fault: Fault, agent_1: Agent1Down, name: &str) -> Figures {
    let path = match fault {
        Fault::Kill => Path::Direct,
        Fault::Blackhole | Fault::Slow(_) => Path::Proxied,
    };
    let world = World::new();
    let pods = fleet(redis, &unique_prefix(name), PODS, path, &world).await;
    if agent_1 == Agent1Down::BeforeTheFault {
        world.set_agent_1_down(true);
    }
    let load = Load::start(&pods);

    if agent_1 == Agent1Down::BeforeTheFault {
        all_see_agent_1_open(&pods).await;
    }
    // Healthy load for half a second: less than the 1 s flush interval, so
    // some pods know agent-1 is open from the transition message alone, not
    // yet from a store answer. What a pod knows, it must keep knowing when
    // Redis goes. A stretch of time measured against the flush interval:
    // the scenario itself, not a wait for a state.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(pods.iter().all(|p| !p.breaker().is_degraded()));

    let agent_1_calls = world.calls(AGENT_1);
    let fault_at = Instant::now();
    match fault {
        Fault::Kill => redis.kill(),
        Fault::Blackhole => pods.iter().for_each(|p| p.proxy().blackhole()),
        Fault::Slow(latency) => pods.iter().for_each(|p| p.proxy().set_latency(latency)),
    }
    if agent_1 == Agent1Down::WithTheFault {
        world.set_agent_1_down(true);
    }
    // A silent Redis is noticed once the cache stops trusting its
    // subscription (max_staleness, 1 s) and store calls time out.
    let to_all_degraded = all_degraded(&pods, Duration::from_secs(4)).await;
    // Degraded load until every pod has failed two more store calls (its
    // prober's pings, every 200 ms), each pod routing meanwhile: each has
    // tried Redis again since, and must still be degraded.
    let errors: Vec<u64> = pods
        .iter()
        .map(|p| p.breaker().store_stats().errors)
        .collect();
    wait_until(
        "every pod's prober finds Redis out twice more",
        Duration::from_secs(3),
        || {
            let probed = pods
                .iter()
                .zip(&errors)
                .all(|(p, before)| p.breaker().store_stats().errors >= before + 2);
            async move { probed }
        },
    )
    .await;
    load.each_routes(5, Duration::from_secs(2)).await;
    for pod in &pods {
        assert!(
            matches!(pod.breaker().store_status(), StoreStatus::Degraded { .. }),
            "{} left degraded mode while Redis was still out",
            pod.name
        );
    }
    let agent_1_calls_during = world.calls(AGENT_1) - agent_1_calls;

    let back_at = match fault {
        Fault::Kill => {
            redis.restart().await;
            Instant::now()
        }
        Fault::Blackhole | Fault::Slow(_) => {
            pods.iter().for_each(|p| p.proxy().heal());
            Instant::now()
        }
    };
    let recovery = all_recovered(&pods, back_at).await;
    // Load on a healthy Redis again: agent-1, still down, opens there (a
    // restarted Redis has forgotten it), and every pod routes on.
    wait_until(
        "agent-1 is open in Redis again",
        Duration::from_secs(2),
        || async {
            pods[0]
                .breaker()
                .snapshot(&id(AGENT_1))
                .await
                .is_ok_and(|s| s.state == CircuitState::Open)
        },
    )
    .await;
    load.each_routes(2, Duration::from_secs(2)).await;
    let samples = load.stop().await;

    let what = format!("{fault:?}");
    let during = samples.during(fault_at, back_at);
    let worst_during_outage = Samples::slowest(&during).expect("routes ran").took;
    let degraded = samples.degraded_before(back_at);
    let worst_degraded = Samples::slowest(&degraded).map(|s| s.took);
    let slow_degraded = degraded
        .iter()
        .filter(|s| s.took >= DEGRADED_ROUTE_BOUND)
        .count();
    // The figures first, so a failing run still reports them.
    eprintln!(
        "faults/{name}: {PODS} pods, store timeout {TIMEOUT:?}: worst route during the outage \
         {worst_during_outage:?} over {} routes (bound {ROUTE_BOUND:?}); every pod degraded \
         {to_all_degraded:?} after the fault; worst route on a degraded pod {worst_degraded:?} \
         over {} routes, {slow_degraded} of them {DEGRADED_ROUTE_BOUND:?} or more; every pod \
         out of degraded mode {recovery:?} after Redis answered again; agent-1 called \
         {agent_1_calls_during} times during the outage",
        during.len(),
        degraded.len(),
    );

    assert_routes_bounded_and_served(&samples, &what);
    assert_degraded_routes_fast(&samples, back_at, &what);
    if agent_1 == Agent1Down::BeforeTheFault {
        let callers: Vec<(&str, Duration)> = during
            .iter()
            .filter(|s| s.passed_over.contains("agent-1 failed"))
            .map(|s| (s.pod.as_str(), s.started - fault_at))
            .collect();
        assert_eq!(
            agent_1_calls_during, 0,
            "agent-1, open fleet-wide and in every pod's cache when Redis went, was called \
             during the outage (pod, time since the fault): {callers:?}"
        );
    }
    assert!(
        samples
            .during(back_at, Instant::now())
            .iter()
            .any(|s| s.result.as_ref().is_ok_and(|a| *a == id(AGENT_2))),
        "routing went on after Redis came back"
    );
    for pod in &pods {
        assert!(
            matches!(pod.breaker().store_status(), StoreStatus::Ok),
            "{}: {:?} after recovery",
            pod.name,
            pod.breaker().store_status()
        );
        let stats = pod.breaker().store_stats();
        assert!(
            stats.degraded_entered >= 1 && stats.degraded_left == stats.degraded_entered,
            "{}: entered degraded mode {} times and left it {} times",
            pod.name,
            stats.degraded_entered,
            stats.degraded_left
        );
        assert!(
            stats.errors >= u64::from(DEGRADE_AFTER),
            "{}: degraded after only {} store errors",
            pod.name,
            stats.errors
        );
    }
    let views = agreed(&pods, Duration::from_secs(2)).await;
    assert_eq!(
        views[0].state,
        CircuitState::Open,
        "agent-1 is down: its circuit is open in Redis after the outage"
    );
    assert_eq!(views[1].state, CircuitState::Closed, "agent-2 serves");
    eprintln!(
        "faults/{name}: after recovery the fleet agrees: agent-1 {:?}, agent-2 {:?}",
        views[0], views[1]
    );
    Figures {
        worst_during_outage,
        routes_during_outage: during.len(),
        degraded_routes: degraded.len(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_redis_under_load_from_eight_pods_keeps_routing_and_every_pod_recovers_within_2s() {
    let _serial = serial().await;
    let mut redis = TestRedis::start().await;
    if !redis.is_owned() {
        eprintln!("skipped: this test kills the server, and REDIS_URL is not ours");
        return;
    }
    let figures = outage(
        &mut redis,
        Fault::Kill,
        Agent1Down::BeforeTheFault,
        "outage-kill",
    )
    .await;
    assert!(figures.routes_during_outage > 0 && figures.degraded_routes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_redis_costs_at_most_three_timeouts_per_route_and_heal_ends_degraded_mode() {
    let _serial = serial().await;
    let mut redis = TestRedis::start().await;
    if !on_loopback(&redis) {
        return;
    }
    let figures = outage(
        &mut redis,
        Fault::Blackhole,
        Agent1Down::WithTheFault,
        "outage-blackhole",
    )
    .await;
    assert!(
        figures.worst_during_outage >= TIMEOUT,
        "a blackhole makes the first store calls wait the whole timeout: {figures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_above_the_timeout_is_an_outage_with_the_same_bounds() {
    let _serial = serial().await;
    let mut redis = TestRedis::start().await;
    if !on_loopback(&redis) {
        return;
    }
    // 250 ms each way: a round trip of 500 ms against a 100 ms timeout.
    let figures = outage(
        &mut redis,
        Fault::Slow(Duration::from_millis(250)),
        Agent1Down::WithTheFault,
        "outage-slow",
    )
    .await;
    assert!(
        figures.worst_during_outage >= TIMEOUT,
        "the first store calls wait the whole timeout: {figures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_below_the_timeout_changes_nothing_but_latency() {
    crate::support::init_tracing();
    let _serial = serial().await;
    let redis = TestRedis::start().await;
    if !on_loopback(&redis) {
        return;
    }
    let world = World::new();
    let pods = fleet(
        &redis,
        &unique_prefix("faults-slow-ok"),
        PODS,
        Path::Proxied,
        &world,
    )
    .await;
    // 20 ms each way: a round trip of 40 ms, within the 100 ms timeout.
    pods.iter()
        .for_each(|p| p.proxy().set_latency(Duration::from_millis(20)));
    let load = Load::start(&pods);
    // Healthy routes first, with Redis 40 ms away.
    load.each_routes(3, Duration::from_secs(2)).await;

    world.set_agent_1_down(true);
    let down_at = Instant::now();
    all_see_agent_1_open(&pods).await;
    let seen_open_after = down_at.elapsed();
    // Routes that got their permit before the circuit opened may still be
    // on their way to agent-1: let every route in flight end.
    load.each_routes(1, Duration::from_secs(2)).await;
    let calls = world.calls(AGENT_1);
    // Then not one of the next ten routes of any pod calls agent-1.
    load.each_routes(10, Duration::from_secs(3)).await;
    assert_eq!(
        world.calls(AGENT_1),
        calls,
        "once every pod has seen agent-1 open, nobody calls it"
    );
    let samples = load.stop().await;

    assert_routes_bounded_and_served(&samples, "20 ms latency");
    assert!(
        samples.0.iter().all(|s| !s.degraded),
        "a pod was degraded with Redis 40 ms away"
    );
    for pod in &pods {
        let stats = pod.breaker().store_stats();
        assert!(
            stats.degraded_entered == 0 && matches!(pod.breaker().store_status(), StoreStatus::Ok),
            "{}: degraded with Redis within the timeout ({} times; now {:?})",
            pod.name,
            stats.degraded_entered,
            pod.breaker().store_status()
        );
    }
    let views = agreed(&pods, Duration::from_secs(2)).await;
    assert_eq!(
        (views[0].state, views[0].generation),
        (CircuitState::Open, 1),
        "agent-1 opened once, fleet-wide"
    );
    assert_eq!(views[1].state, CircuitState::Closed);
    let errors: u64 = pods.iter().map(|p| p.breaker().store_stats().errors).sum();
    // The scripts are loaded when a store is built: no first call pays
    // NOSCRIPT + SCRIPT LOAD + EVALSHA (three round trips, 120 ms here),
    // which once timed out about once per pod and script. A stray timeout
    // on a loaded machine is tolerated, not one per pod.
    assert!(
        errors < u64::try_from(PODS).unwrap(),
        "{errors} store operations timed out with Redis 40 ms away"
    );
    let worst = samples.worst();
    eprintln!(
        "faults/slow-ok: {PODS} pods, 40 ms round trip, timeout {TIMEOUT:?}: worst route {:?} \
         (on {}, passing over [{}]) over {} routes, never degraded, {errors} store errors in \
         all; agent-1 seen open by every pod {seen_open_after:?} after it went down, after \
         {calls} calls to it in all",
        worst.took,
        worst.pod,
        worst.passed_over,
        samples.0.len(),
    );
}
