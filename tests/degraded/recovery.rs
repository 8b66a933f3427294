//! Redis returns: the pod resyncs, forgets what it decided alone, and leaves
//! degraded mode within 2 s; health says "degraded" meanwhile.

use std::time::{Duration, Instant};

use fleet_breaker::router::FailoverRouter;
use fleet_breaker::{CircuitState, StorePolicy, StoreStatus};

use crate::common::{
    DEGRADE_AFTER, PodSpec, RECOVERY_BOUND, drive_until_degraded, id, owned_redis, pod,
    wait_recovered,
};
use crate::support::{unique_prefix, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_ends_degraded_mode_within_two_seconds_and_health_follows() {
    let Some(mut redis) = owned_redis().await else {
        return;
    };
    let prefix = unique_prefix("degraded-restart");
    let breaker = pod(
        redis.url(),
        &prefix,
        PodSpec::cached(StorePolicy::FailLocal),
    )
    .await;
    let router = FailoverRouter::new(breaker.clone());
    let serve = |_agent, n: u32| async move { Ok::<_, String>(n) };
    router
        .route_task("before", ["agent-1", "agent-2"], serve, 1)
        .await
        .expect("served");
    let health = serde_json::to_value(router.health_status().await.unwrap()).unwrap();
    assert_eq!(health["store"], "ok", "{health}");
    assert!(health.get("store_degraded_since_ms").is_none(), "{health}");

    redis.kill();
    drive_until_degraded(&breaker, &id("agent-1")).await;
    let entered = breaker.store_stats();
    assert_eq!((entered.degraded_entered, entered.degraded_left), (1, 0));
    assert!(entered.errors >= u64::from(DEGRADE_AFTER));

    // Health answers without the store, and says so.
    let started = Instant::now();
    let health = router.health_status().await.expect("health while degraded");
    assert!(
        started.elapsed() < Duration::from_millis(20),
        "no store call"
    );
    assert!(health.store.is_degraded());
    let json = serde_json::to_value(&health).unwrap();
    assert_eq!(json["store"], "degraded", "{json}");
    assert!(
        json["store_degraded_since_ms"].as_u64().unwrap() > 0,
        "{json}"
    );
    assert!(json["store_degraded_reason"].is_string(), "{json}");
    assert_eq!(json["total_agents"], 2, "the agents this pod knows: {json}");
    assert_eq!(json["agents"]["agent-1"]["state"], "closed", "{json}");
    assert!(json["routing_events"].as_u64().unwrap() >= 1, "{json}");

    // The prober keeps failing while Redis is down, and the pod stays degraded.
    let probed = entered.errors + 2;
    wait_until("two probes fail", Duration::from_secs(2), || {
        let breaker = breaker.clone();
        async move { breaker.store_stats().errors >= probed }
    })
    .await;
    assert!(breaker.is_degraded());

    redis.restart().await;
    let took = wait_recovered(&breaker).await;
    println!(
        "Redis restarted: out of degraded mode {took:?} after it answered PING \
         (bound {RECOVERY_BOUND:?})"
    );
    assert_eq!(breaker.store_status(), StoreStatus::Ok);
    let stats = breaker.store_stats();
    assert_eq!((stats.degraded_entered, stats.degraded_left), (1, 1));
    let health = serde_json::to_value(router.health_status().await.unwrap()).unwrap();
    assert_eq!(health["store"], "ok", "{health}");
    assert!(health.get("store_degraded_since_ms").is_none(), "{health}");
    let permit = breaker.acquire(&id("agent-1")).await.expect("admitted");
    assert!(!permit.is_degraded(), "decided by Redis again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_recovery_the_local_fallback_is_forgotten_and_redis_state_rules() {
    let Some(mut redis) = owned_redis().await else {
        return;
    };
    let prefix = unique_prefix("degraded-forget");
    let spec = PodSpec::uncached(StorePolicy::FailLocal);
    let pod_a = pod(redis.url(), &prefix, spec).await;
    let (agent_1, agent_3) = (id("agent-1"), id("agent-3"));
    for agent in [&agent_1, &agent_3] {
        pod_a.acquire(agent).await.unwrap().success().await;
    }

    // Redis dies; pod A sees agent-1 and agent-3 fail and opens both on its
    // own. The first three acquires try Redis (and degrade the pod); two
    // failures open a circuit.
    redis.kill();
    for agent in [&agent_1, &agent_1, &agent_3, &agent_3] {
        let permit = pod_a.acquire(agent).await.expect("closed locally");
        assert!(permit.is_degraded());
        permit.failure("down").await;
    }
    assert!(pod_a.is_degraded());
    for agent in [&agent_1, &agent_3] {
        let rejected = pod_a.acquire(agent).await.expect_err("opened locally");
        assert_eq!(rejected.state, CircuitState::Open);
    }

    // Redis comes back empty; another pod records one failure of agent-1.
    redis.restart().await;
    let pod_b = pod(redis.url(), &prefix, spec).await;
    pod_b.acquire(&agent_1).await.unwrap().failure("blip").await;
    wait_recovered(&pod_a).await;

    // Pod A decides agent-1 with Redis's state, not its fallback's open
    // circuit.
    let permit = pod_a.acquire(&agent_1).await.expect("closed in Redis");
    assert!(!permit.is_degraded());
    drop(permit);
    let snapshot = pod_a.snapshot(&agent_1).await.unwrap();
    assert_eq!(
        (snapshot.state, snapshot.failure_count),
        (CircuitState::Closed, 1),
        "Redis's state"
    );

    // A second outage starts from what Redis said, not from the local
    // decisions of the first: agent-1 is seeded closed from Redis's last
    // snapshot, and agent-3 (which the restarted Redis no longer knows, and
    // pod A has not called since) starts fresh instead of open.
    redis.kill();
    drive_until_degraded(&pod_a, &id("agent-2")).await;
    for agent in [&agent_1, &agent_3] {
        let permit = pod_a
            .acquire(agent)
            .await
            .unwrap_or_else(|r| panic!("{agent}: the forgotten open circuit came back: {r}"));
        assert!(permit.is_degraded());
    }
    let stats = pod_a.store_stats();
    assert_eq!((stats.degraded_entered, stats.degraded_left), (2, 1));
}
