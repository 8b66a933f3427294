//! Two pods (two routers, each with its own Redis pool) on one real Redis:
//! one fleet-wide view of circuits, failures and routing decisions.

use std::time::Duration;

use fleet_breaker::router::{Attempt, FailoverRouter, HealthStatus};
use fleet_breaker::store::{FailureRecord, RoutingJournal};
use fleet_breaker::{BreakerConfig, CircuitBreaker, CircuitState, RedisStore};
use redis::AsyncCommands;

use crate::common::{Agents, Behave, id};
use crate::support::{TestRedis, unique_prefix, wait_until};

async fn pod(redis: &TestRedis, prefix: &str, name: &str) -> FailoverRouter {
    let store = RedisStore::builder(redis.url())
        .prefix(prefix)
        .timeout(Duration::from_secs(2))
        .pool_size(4)
        .build()
        .await
        .expect("connect to the test Redis");
    let config = BreakerConfig::builder()
        .failure_threshold(2)
        // The first opening waits 15 s: the circuit stays open for the test.
        .base_backoff(Duration::from_secs(10))
        .build()
        .unwrap();
    let breaker = CircuitBreaker::builder()
        .store(store)
        .config(config)
        .instance_id(name)
        .build()
        .unwrap();
    FailoverRouter::new(breaker)
}

/// The health report without the one field that moves with the clock.
fn steady(mut health: HealthStatus) -> HealthStatus {
    for metrics in health.agents.values_mut() {
        metrics.retry_after_seconds = None;
    }
    health
}

#[tokio::test]
async fn a_failure_seen_by_one_pod_shapes_the_other_pods_routing() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("router-fleet-shape");
    let pod_a = pod(&redis, &prefix, "pod-a").await;
    let pod_b = pod(&redis, &prefix, "pod-b").await;
    let agents_a = Agents::new(&[("agent-1", Behave::Fail("connection refused"))]);
    let agents_b = Agents::default(); // agent-1 would serve pod B, if called

    for task in 0..2 {
        let task_id = format!("a-{task}");
        let routed = pod_a
            .route_task(&task_id, ["agent-1", "agent-2"], agents_a.task_fn(), task)
            .await
            .unwrap();
        assert_eq!(routed.agent, id("agent-2"));
    }
    let routed = pod_b
        .route_task("b-0", ["agent-1", "agent-2"], agents_b.task_fn(), 0)
        .await
        .unwrap();

    assert_eq!(
        agents_b.calls(),
        ["agent-2"],
        "pod B never calls the agent pod A saw fail"
    );
    assert!(matches!(
        routed.history[0].attempt,
        Attempt::Rejected {
            state: CircuitState::Open,
            retry_after: Some(_),
            ..
        }
    ));
}

#[tokio::test]
async fn health_status_and_recent_failures_agree_on_both_pods() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("router-fleet-health");
    let pod_a = pod(&redis, &prefix, "pod-a").await;
    let pod_b = pod(&redis, &prefix, "pod-b").await;
    let agents = Agents::new(&[("agent-1", Behave::Fail("connection refused"))]);
    let list = ["agent-1", "agent-2"];
    pod_a
        .route_task("a-0", list, agents.task_fn(), 0)
        .await
        .unwrap();
    pod_b
        .route_task("b-0", list, agents.task_fn(), 1)
        .await
        .unwrap();
    pod_a
        .route_task("a-1", list, agents.task_fn(), 2)
        .await
        .unwrap();
    pod_b
        .route_task("b-1", list, agents.task_fn(), 3)
        .await
        .unwrap();

    // Each pod flushes its own counts before it answers; after both have,
    // both report the fleet's totals.
    pod_a.flush_routing_events().await.unwrap();
    pod_a.breaker().flush().await.unwrap();
    let health_b = pod_b.health_status().await.unwrap();
    let health_a = pod_a.health_status().await.unwrap();

    assert_eq!(health_a.routing_events, 4);
    assert_eq!(steady(health_a.clone()), steady(health_b));
    assert_eq!(
        (
            health_a.total_agents,
            health_a.open_circuits,
            health_a.healthy_agents
        ),
        (2, 1, 1)
    );
    assert_eq!(health_a.agents[&id("agent-1")].state, CircuitState::Open);
    assert_eq!(health_a.agents[&id("agent-1")].metrics.total_rejections, 2);

    let failures_a = pod_a.recent_failures(10).await.unwrap();
    let failures_b = pod_b.recent_failures(10).await.unwrap();
    assert_eq!(failures_a, failures_b);
    let seen: Vec<_> = failures_a
        .iter()
        .map(|f| {
            (
                f.task_id.as_str(),
                f.instance_id.as_str(),
                f.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("b-0", "pod-b", "connection refused"),
            ("a-0", "pod-a", "connection refused")
        ]
    );

    // The documented keys hold the same facts.
    let mut conn = redis.connection().await;
    let total: u64 = conn.get(format!("{prefix}:routing_events")).await.unwrap();
    let stream_len: u64 = conn.xlen(format!("{prefix}:failures")).await.unwrap();
    assert_eq!((total, stream_len), (4, 2));
}

#[tokio::test]
async fn reset_on_one_pod_reopens_the_agent_to_the_other() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("router-fleet-reset");
    let pod_a = pod(&redis, &prefix, "pod-a").await;
    let pod_b = pod(&redis, &prefix, "pod-b").await;
    let failing = Agents::new(&[("agent-1", Behave::Fail("down"))]);
    for task in 0..2 {
        pod_a
            .route_task("a", ["agent-1", "agent-2"], failing.task_fn(), task)
            .await
            .unwrap();
    }

    let reset = pod_a.reset_agent("agent-1").await.unwrap();
    // Pod B hears of the reset over pub/sub (a few ms at most on loopback).
    let cache = pod_b
        .breaker()
        .cache()
        .expect("a Redis breaker caches")
        .clone();
    wait_until(
        "pod B's cache sees the reset",
        Duration::from_secs(2),
        || {
            let cache = cache.clone();
            async move { cache.generation(&id("agent-1")) >= Some(reset.generation) }
        },
    )
    .await;
    let healthy = Agents::default();
    let routed = pod_b
        .route_task("b", ["agent-1", "agent-2"], healthy.task_fn(), 0)
        .await
        .unwrap();

    assert_eq!(routed.agent, id("agent-1"));
}

#[tokio::test]
async fn the_failures_stream_stays_near_its_cap_and_reads_newest_first() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("router-fleet-cap");
    let store = RedisStore::builder(redis.url())
        .prefix(&prefix)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("connect to the test Redis");
    for n in 0..500 {
        let record = FailureRecord {
            task_id: format!("task-{n}"),
            agent_id: id("agent-1"),
            reason: "down".into(),
            time_ms: 1_700_000_000_000 + n,
            instance_id: "pod-a".into(),
        };
        store.push_failure(&record, 10).await.unwrap();
    }

    let newest = store.recent_failures(3).await.unwrap();
    let tasks: Vec<_> = newest.iter().map(|f| f.task_id.as_str()).collect();
    assert_eq!(tasks, ["task-499", "task-498", "task-497"]);
    assert_eq!(newest[0].time_ms, 1_700_000_000_499);
    // `MAXLEN ~` trims whole stream nodes (100 entries by default): never
    // below the cap, never far above it.
    let mut conn = redis.connection().await;
    let len: usize = conn.xlen(format!("{prefix}:failures")).await.unwrap();
    assert!((10..=110).contains(&len), "stream length {len}");
    assert_eq!(store.recent_failures(1000).await.unwrap().len(), len);
}

#[tokio::test]
async fn with_redis_gone_routing_goes_on_and_health_says_why() {
    let mut redis = TestRedis::start().await;
    if !redis.is_owned() {
        eprintln!("skipped: needs a Redis this test may kill (REDIS_URL is someone else's)");
        return;
    }
    let store = RedisStore::builder(redis.url())
        .prefix(unique_prefix("router-fleet-gone"))
        .timeout(Duration::from_millis(200))
        .build()
        .await
        .expect("connect to the test Redis");
    let breaker = CircuitBreaker::builder().store(store).build().unwrap();
    let router = FailoverRouter::new(breaker);
    let agents = Agents::new(&[("agent-1", Behave::Fail("down"))]);
    let list = ["agent-1", "agent-2"];
    router
        .route_task("before", list, agents.task_fn(), 0)
        .await
        .unwrap();

    redis.kill();
    let started = std::time::Instant::now();
    let routed = router.route_task("during", list, agents.task_fn(), 1).await;

    // The default policy decides locally; the failure cannot be journaled.
    assert_eq!(
        routed.expect("served while Redis is gone").agent,
        id("agent-2")
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let health = router
        .health_status()
        .await
        .expect_err("no health without the store");
    assert!(health.is_store_unavailable(), "{health}");
    assert!(
        router
            .recent_failures(10)
            .await
            .unwrap_err()
            .is_store_unavailable()
    );
}
