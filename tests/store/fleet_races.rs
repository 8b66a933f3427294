//! Sixteen pods (breakers with their own pools) race on one agent in one Redis.
//!
//! The pods share one `ManualClock` (the stores' test clock override), so a
//! backoff ends when the test moves the clock past it, at once and for every
//! pod alike, instead of after a sleep in Redis time.

use std::sync::Arc;
use std::time::Duration;

use fleet_breaker::{
    AgentId, BreakerConfig, CircuitBreaker, CircuitState, ManualClock, Permit, RedisStore,
    StorePolicy, Transition,
};
use futures::StreamExt;
use futures::future::join_all;

use crate::support::fleet::{acquire_at_once, caches_hold_the_store_view, fleet_clock, published};
use crate::support::{TestRedis, unique_prefix};

const PODS: usize = 16;

fn config() -> BreakerConfig {
    BreakerConfig::builder()
        .base_backoff(Duration::from_millis(40))
        .max_backoff(Duration::from_millis(200))
        .recovery_timeout(Duration::from_secs(10))
        .build()
        .expect("valid config")
}

/// `PODS` pods whose scripts and caches all read `clock`: one time for the
/// fleet, as Redis `TIME` would be.
async fn fleet(redis: &TestRedis, prefix: &str, clock: &ManualClock) -> Vec<CircuitBreaker> {
    let mut pods = Vec::with_capacity(PODS);
    for pod in 0..PODS {
        let store = RedisStore::builder(redis.url())
            .prefix(prefix)
            .clock_override(Arc::new(clock.clone()))
            .timeout(Duration::from_secs(2))
            .pool_size(4)
            .build()
            .await
            .expect("connect");
        let breaker = CircuitBreaker::builder()
            .store(store)
            .config(config())
            .policy(StorePolicy::FailClosed)
            .instance_id(format!("pod-{pod}"))
            .build()
            .expect("valid breaker");
        pods.push(breaker);
    }
    pods
}

/// Every pod holds a permit granted while closed, then all record failures at once.
async fn open_by_racing_failures(pods: &[CircuitBreaker], agent: &AgentId) {
    let permits: Vec<Permit> = join_all(pods.iter().map(|pod| pod.acquire(agent)))
        .await
        .into_iter()
        .map(|p| p.expect("closed circuit admits"))
        .collect();
    join_all(permits.into_iter().map(|p| p.failure("down"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_pods_open_the_circuit_after_exactly_five_recorded_failures() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("races-open");
    let clock = fleet_clock();
    let pods = fleet(&redis, &prefix, &clock).await;
    let agent = AgentId::new("agent-1").unwrap();

    open_by_racing_failures(&pods, &agent).await;

    let snapshot = pods[3].snapshot(&agent).await.unwrap();
    assert_eq!(snapshot.state, CircuitState::Open);
    assert_eq!(
        snapshot.failure_count, 5,
        "failures after the opening are stale and not counted"
    );
    assert_eq!(snapshot.generation, 1);
    assert_eq!(snapshot.backoff_ms, 60);
    let transitions = published(&redis, &prefix).await;
    assert_eq!(
        transitions.len(),
        1,
        "one opening, one message: {transitions:?}"
    );
    assert_eq!(
        (transitions[0].from, transitions[0].to),
        (CircuitState::Closed, CircuitState::Open)
    );

    // While open, every pod is rejected, once its cache has heard of the
    // opening: a pod whose own failure was recorded before the fifth learns
    // of it by pub/sub, which under load can lag the stream read above (a
    // CI run caught one pod still admitting from its cache).
    caches_hold_the_store_view(&pods, &agent).await;
    for pod in &pods {
        assert!(pod.acquire(&agent).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_grants_exactly_three_probes_across_sixteen_pods() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("races-probes");
    let clock = fleet_clock();
    let pods = fleet(&redis, &prefix, &clock).await;
    let agent = AgentId::new("agent-1").unwrap();
    open_by_racing_failures(&pods, &agent).await;
    caches_hold_the_store_view(&pods, &agent).await;
    // Still open at the last millisecond of the 60 ms backoff...
    clock.advance(Duration::from_millis(59));
    assert!(acquire_at_once(&pods, &agent, 1).await.is_empty());
    // ...and half-open for every pod at once at its end.
    clock.advance(Duration::from_millis(1));

    // Every pod asks four times at once, holding whatever it gets.
    let agent = &agent;
    let granted = acquire_at_once(&pods, agent, 4).await;
    assert_eq!(granted.len(), 3, "probe permits granted fleet-wide");
    assert!(granted.iter().all(Permit::is_probe));
    assert_eq!(pods[0].snapshot(agent).await.unwrap().probes.len(), 3);

    join_all(granted.into_iter().map(Permit::success)).await;
    let snapshot = pods[9].snapshot(agent).await.unwrap();
    assert_eq!(snapshot.state, CircuitState::Closed);
    assert_eq!(
        snapshot.backoff_ms, 40,
        "a close resets the backoff to base"
    );

    let path: Vec<_> = published(&redis, &prefix)
        .await
        .iter()
        .map(|t| (t.from, t.to))
        .collect();
    assert_eq!(
        path,
        [
            (CircuitState::Closed, CircuitState::Open),
            (CircuitState::Open, CircuitState::HalfOpen),
            (CircuitState::HalfOpen, CircuitState::Closed),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_change_is_published_exactly_once_under_contention() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("races-once");
    let clock = fleet_clock();
    let pods = fleet(&redis, &prefix, &clock).await;
    let agent = AgentId::new("agent-1").unwrap();

    let client = redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(format!("{prefix}:events")).await.unwrap();
    let mut messages = pubsub.into_on_message();

    // Three cycles of: race to open, wait out the backoff, race for probes.
    // In the second cycle the first round of probes fails and reopens it.
    for cycle in 0..3 {
        open_by_racing_failures(&pods, &agent).await;
        for round in 0..2 {
            // Every pod knows of the (re)opening, then the backoff (at most
            // 200 ms) is over for all of them at once.
            caches_hold_the_store_view(&pods, &agent).await;
            clock.advance(Duration::from_millis(200));
            let probes = acquire_at_once(&pods, &agent, 1).await;
            assert_eq!(probes.len(), 3, "cycle {cycle} round {round}");
            if cycle == 1 && round == 0 {
                join_all(probes.into_iter().map(|p| p.failure("still down"))).await;
            } else {
                join_all(probes.into_iter().map(Permit::success)).await;
                break;
            }
        }
        assert_eq!(
            pods[cycle].snapshot(&agent).await.unwrap().state,
            CircuitState::Closed
        );
    }

    let transitions = published(&redis, &prefix).await;
    let generations: Vec<u64> = transitions.iter().map(|t| t.generation).collect();
    let expected: Vec<u64> = (1..=transitions.len() as u64).collect();
    assert_eq!(
        generations, expected,
        "one message per generation, none twice, none missing"
    );
    let final_state = pods[15].snapshot(&agent).await.unwrap();
    assert_eq!(final_state.generation, transitions.len() as u64);
    for window in transitions.windows(2) {
        assert_eq!(
            window[0].to, window[1].from,
            "transitions chain: {window:?}"
        );
    }

    // Pub/sub carried the same messages.
    let mut live = Vec::new();
    while live.len() < transitions.len() {
        let message = tokio::time::timeout(Duration::from_secs(2), messages.next())
            .await
            .expect("every transition is published")
            .expect("subscription open");
        let payload: String = message.get_payload().unwrap();
        live.push(serde_json::from_str::<Transition>(&payload).unwrap());
    }
    assert_eq!(live, transitions);
}
