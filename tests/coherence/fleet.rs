//! Sixteen pods with their own pools, watchers and caches on one Redis.

use std::sync::Arc;
use std::time::Duration;

use fleet_breaker::{
    AgentId, BreakerConfig, CircuitBreaker, CircuitState, ManualClock, Permit, RedisStore,
};
use futures::future::join_all;

use crate::support::{TestRedis, unique_prefix, wait_until};

pub(crate) const PODS: usize = 16;
pub(crate) const MAX_STALENESS: Duration = Duration::from_millis(500);

pub(crate) fn config() -> BreakerConfig {
    BreakerConfig::builder()
        .base_backoff(Duration::from_millis(200))
        .max_backoff(Duration::from_secs(2))
        .build()
        .unwrap()
}

pub(crate) async fn pod(redis: &TestRedis, prefix: &str) -> CircuitBreaker {
    pod_on(redis, prefix, None).await
}

/// A pod whose store reads `clock` (when given) instead of Redis `TIME`.
async fn pod_on(redis: &TestRedis, prefix: &str, clock: Option<&ManualClock>) -> CircuitBreaker {
    let mut store = RedisStore::builder(redis.url())
        .prefix(prefix)
        .timeout(Duration::from_secs(2))
        .pool_size(2);
    if let Some(clock) = clock {
        store = store.clock_override(Arc::new(clock.clone()));
    }
    CircuitBreaker::builder()
        .store(store.build().await.expect("connect"))
        .config(config())
        .max_staleness(MAX_STALENESS)
        .flush_interval(Duration::from_millis(200))
        .build()
        .unwrap()
}

pub(crate) async fn fleet(redis: &TestRedis, prefix: &str, pods: usize) -> Vec<CircuitBreaker> {
    join_all((0..pods).map(|_| pod(redis, prefix))).await
}

/// Every pod's subscription is up and its cache holds `agent` closed.
pub(crate) async fn warm(pods: &[CircuitBreaker], agent: &AgentId) {
    for pod in pods {
        let pod = pod.clone();
        wait_until(
            "the pod's subscription is up",
            Duration::from_secs(5),
            || {
                let pod = pod.clone();
                async move { pod.cache().unwrap().is_subscribed() }
            },
        )
        .await;
        pod.acquire(agent).await.unwrap().success().await;
    }
}

/// The scripts Redis ran: the store's operations by `FCALL` (or
/// `EVALSHA` where functions are refused).
pub(crate) async fn script_calls(redis: &TestRedis) -> u64 {
    let stats = redis.command_stats().await;
    ["fcall", "evalsha"]
        .iter()
        .filter_map(|command| stats.get(*command))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_opened_by_one_pod_is_rejected_by_every_pod_locally_within_max_staleness() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("coherence-open");
    let pods = fleet(&redis, &prefix, PODS).await;
    let agent = AgentId::new("agent-1").unwrap();
    warm(&pods, &agent).await;

    for _ in 0..5 {
        pods[0].acquire(&agent).await.unwrap().failure("down").await;
    }
    assert_eq!(
        pods[0].snapshot(&agent).await.unwrap().state,
        CircuitState::Open
    );

    // Within max_staleness every pod's cache has the opening...
    for pod in &pods {
        let (pod, agent) = (pod.clone(), agent.clone());
        wait_until("every cache sees the opening", MAX_STALENESS, || {
            let (pod, agent) = (pod.clone(), agent.clone());
            async move { pod.cache().unwrap().state(&agent) == Some(CircuitState::Open) }
        })
        .await;
    }
    // ...and rejects without a round trip.
    let before = script_calls(&redis).await;
    for pod in &pods {
        let rejected = pod.acquire(&agent).await.expect_err("open everywhere");
        assert_eq!(rejected.state, CircuitState::Open);
        assert!(rejected.retry_after.is_some());
    }
    assert_eq!(
        script_calls(&redis).await - before,
        0,
        "16 rejections, no script call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_is_granted_fleet_wide_at_most_half_open_max_calls_times() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("coherence-probes");
    // One clock for the fleet's scripts and caches, moved by the test.
    let clock = crate::support::fleet::fleet_clock();
    let pods = join_all((0..PODS).map(|_| pod_on(&redis, &prefix, Some(&clock)))).await;
    let agent = AgentId::new("agent-1").unwrap();
    warm(&pods, &agent).await;
    for _ in 0..5 {
        pods[0].acquire(&agent).await.unwrap().failure("down").await;
    }
    // Every cache hears of the opening (one that had not would still admit
    // as closed), then the 300 ms backoff is over for all of them at once.
    crate::support::fleet::caches_hold_the_store_view(&pods, &agent).await;
    clock.advance(Duration::from_millis(300));

    let agent = &agent;
    let granted = crate::support::fleet::acquire_at_once(&pods, agent, 4).await;
    assert_eq!(granted.len(), 3, "probe permits granted across 16 pods");
    assert!(granted.iter().all(Permit::is_probe));
    join_all(granted.into_iter().map(Permit::success)).await;
    assert_eq!(
        pods[7].snapshot(agent).await.unwrap().state,
        CircuitState::Closed
    );
}
