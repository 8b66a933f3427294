//! The trip policies across a fleet of pods on one Redis: the fleet's calls
//! decide, one trip per crossing, exactly `half_open_max_calls` probes, a
//! retry-after opens fleet-wide at once, and one sick pod cannot open an
//! agent for everyone under a quorum.

use std::sync::Arc;
use std::time::Duration;

use fleet_breaker::config::AgentSettings;
use fleet_breaker::store::StoreExt;
use fleet_breaker::{
    AgentId, BreakerConfig, CircuitBreaker, CircuitState, ManualClock, Permit, RedisStore,
    RejectCause, StorePolicy, TransitionReason,
};
use futures::future::join_all;

use crate::support::fleet::{acquire_at_once, caches_hold_the_store_view, fleet_clock, published};
use crate::support::{TestRedis, unique_prefix, wait_until};

const PODS: usize = 16;

async fn fleet(
    redis: &TestRedis,
    prefix: &str,
    clock: &ManualClock,
    config: BreakerConfig,
    pods: usize,
) -> Vec<CircuitBreaker> {
    let mut fleet = Vec::with_capacity(pods);
    for pod in 0..pods {
        let store = RedisStore::builder(redis.url())
            .prefix(prefix)
            .clock_override(Arc::new(clock.clone()))
            .timeout(Duration::from_secs(2))
            .pool_size(2)
            .build()
            .await
            .expect("connect");
        fleet.push(
            CircuitBreaker::builder()
                .store(store)
                .config(config)
                .policy(StorePolicy::FailClosed)
                .instance_id(format!("pod-{pod}"))
                .build()
                .expect("valid breaker"),
        );
    }
    fleet
}

fn rate_config() -> BreakerConfig {
    BreakerConfig::builder()
        .failure_threshold(1_000)
        .failure_rate_threshold(Some(0.5))
        .minimum_calls(20)
        .base_backoff(Duration::from_millis(40))
        .max_backoff(Duration::from_millis(200))
        .recovery_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Every pod holds a permit, then settles it: the first `failures` pods fail.
async fn round(pods: &[CircuitBreaker], agent: &AgentId, failures: usize) {
    let permits: Vec<Permit> = join_all(pods.iter().map(|pod| pod.acquire(agent)))
        .await
        .into_iter()
        .map(|p| p.expect("closed circuit admits"))
        .collect();
    join_all(permits.into_iter().enumerate().map(|(i, p)| async move {
        if i < failures {
            p.failure("down").await;
        } else {
            p.success().await;
        }
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_pods_trip_once_on_the_fleets_failure_rate_then_probe_three_times() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("policies-rate");
    let clock = fleet_clock();
    let pods = fleet(&redis, &prefix, &clock, rate_config(), PODS).await;
    let agent = AgentId::new("agent-c").unwrap();
    // One round of 16 calls, 7 failing: 44%, under the minimum of 20 calls.
    round(&pods, &agent, 7).await;
    let s = pods[0].snapshot(&agent).await.unwrap();
    assert_eq!(s.state, CircuitState::Closed);
    // No pod saw 5 failures in a row; a per-pod breaker never trips here.
    // A second round, 9 of 16 failing: 16 of 32 calls, 50%: one trip.
    round(&pods, &agent, 9).await;
    // The successes some pods counted locally reach the window within the
    // window flush interval; the failures reached it at once.
    wait_until(
        "agent-c open on the fleet's rate",
        Duration::from_secs(5),
        || async { pods[5].snapshot(&agent).await.unwrap().state == CircuitState::Open },
    )
    .await;
    let s = pods[5].snapshot(&agent).await.unwrap();
    assert_eq!(s.generation, 1, "one transition for the crossing");
    let mut t = published(&redis, &prefix).await;
    assert_eq!(t.len(), 1, "{t:?}");
    let opening = t.remove(0);
    assert_eq!(opening.reason, TransitionReason::FailureRate);
    // Exactly three probes across the fleet when the backoff ends.
    caches_hold_the_store_view(&pods, &agent).await;
    clock.advance(Duration::from_millis(200));
    let probes = acquire_at_once(&pods, &agent, 2).await;
    assert_eq!(probes.len(), 3);
    join_all(probes.into_iter().map(Permit::success)).await;
    let s = pods[9].snapshot(&agent).await.unwrap();
    assert_eq!(s.state, CircuitState::Closed);
    assert!(s.window.is_empty(), "closing empties the window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sick_pod_opens_an_agent_for_itself_only_under_a_quorum_of_two() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("policies-quorum");
    let clock = fleet_clock();
    let config = BreakerConfig::builder()
        .min_reporting_pods(2)
        .base_backoff(Duration::from_millis(40))
        .build()
        .unwrap();
    let pods = fleet(&redis, &prefix, &clock, config, 4).await;
    let agent = AgentId::new("agent-a").unwrap();
    // pod-0 sees every call fail; the others see none.
    for _ in 0..10 {
        let Ok(permit) = pods[0].acquire(&agent).await else {
            break;
        };
        permit.failure("dns broken on this pod").await;
    }
    let s = pods[1].snapshot(&agent).await.unwrap();
    assert_eq!(s.state, CircuitState::Closed, "no fleet-wide trip: {s:?}");
    let rejected = pods[0].acquire(&agent).await.expect_err("open on pod-0");
    assert_eq!(rejected.cause, RejectCause::LocalQuorum);
    let handle = pods[0].agent(&agent);
    let rejected = handle
        .acquire()
        .await
        .expect_err("open on pod-0 through a handle too");
    assert_eq!(rejected.cause, RejectCause::LocalQuorum);
    for decided in [
        pods[0].try_acquire(&agent).map(|decided| decided.map(drop)),
        handle.try_acquire().map(|decided| decided.map(drop)),
    ] {
        let rejected = decided.expect("pod-0 decides its own open alone");
        assert_eq!(rejected.unwrap_err().cause, RejectCause::LocalQuorum);
    }
    assert_eq!(pods[0].local_opens().len(), 1);
    let shown = pods[0].metrics(&agent).await.unwrap();
    assert_eq!(shown.state, CircuitState::Closed, "the fleet's state");
    assert!(
        shown.local_open_seconds.is_some(),
        "and pod-0's own open: {shown:?}"
    );
    let json = serde_json::to_value(&shown).unwrap();
    assert!(json["local_open_seconds"].as_f64().is_some(), "{json}");
    let healthy = pods[1].metrics(&agent).await.unwrap();
    assert_eq!(healthy.local_open_seconds, None);
    for pod in &pods[1..] {
        pod.acquire(&agent)
            .await
            .expect("the healthy pods keep calling")
            .success()
            .await;
        assert!(pod.local_opens().is_empty());
    }
    // Failures from a second pod make the quorum: the fleet opens.
    for _ in 0..5 {
        let Ok(permit) = pods[1].acquire(&agent).await else {
            break;
        };
        permit.failure("down for everyone").await;
    }
    let s = pods[2].snapshot(&agent).await.unwrap();
    assert_eq!(s.state, CircuitState::Open, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_opens_the_agent_fleet_wide_at_once_for_that_long() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("policies-retry");
    let clock = fleet_clock();
    let pods = fleet(&redis, &prefix, &clock, BreakerConfig::default(), 3).await;
    let agent = AgentId::new("agent-b").unwrap();
    for pod in &pods {
        pod.acquire(&agent).await.unwrap().success().await;
    }
    let permit = pods[0].acquire(&agent).await.unwrap();
    permit
        .failure_retry_after("429 Too Many Requests", Duration::from_secs(30))
        .await;
    caches_hold_the_store_view(&pods, &agent).await;
    for pod in &pods {
        let rejected = pod.acquire(&agent).await.expect_err("open fleet-wide");
        let left = rejected.retry_after.expect("a retry-after");
        assert!(left > Duration::from_secs(29), "{left:?}");
    }
    let s = pods[2].snapshot(&agent).await.unwrap();
    assert_eq!(
        s.backoff_ms, 1_500,
        "the backoff escalates as for any opening"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_stored_for_an_agent_apply_to_every_pod_at_the_next_call() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("policies-settings");
    let clock = fleet_clock();
    let pods = fleet(&redis, &prefix, &clock, BreakerConfig::default(), 2).await;
    let agent = AgentId::new("agent-d").unwrap();
    pods[0]
        .store()
        .configure(
            pods[0].config(),
            &agent,
            &AgentSettings {
                failure_threshold: Some(2),
                ..AgentSettings::default()
            },
        )
        .await
        .expect("stored");
    // pod-1 started with the default threshold of 5; the agent's own 2 wins.
    for _ in 0..2 {
        pods[1].acquire(&agent).await.unwrap().failure("down").await;
    }
    let s = pods[0].snapshot(&agent).await.unwrap();
    assert_eq!(s.state, CircuitState::Open);
    assert_eq!(s.settings.failure_threshold, Some(2));
}

/// One race under `policy`: every pod settles one permit at once with
/// `settle`, then the fleet must show one opening for `reason`, and
/// exactly three probes when the backoff ends.
async fn one_trip_and_three_probes<F, Fut>(
    prefix: &str,
    config: BreakerConfig,
    reason: TransitionReason,
    settle: F,
) where
    F: Fn(usize, Permit) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let redis = TestRedis::start().await;
    let clock = fleet_clock();
    let pods = fleet(&redis, prefix, &clock, config, PODS).await;
    let agent = AgentId::new("agent-x").unwrap();
    let permits: Vec<Permit> = join_all(pods.iter().map(|pod| pod.acquire(&agent)))
        .await
        .into_iter()
        .map(|p| p.expect("closed"))
        .collect();
    join_all(permits.into_iter().enumerate().map(|(i, p)| settle(i, p))).await;
    let opened = || async { pods[0].snapshot(&agent).await.unwrap().state == CircuitState::Open };
    wait_until("the fleet's trip", Duration::from_secs(5), opened).await;
    let t = published(&redis, prefix).await;
    assert_eq!(t.len(), 1, "one opening for the crossing: {t:?}");
    assert_eq!(t[0].reason, reason);
    caches_hold_the_store_view(&pods, &agent).await;
    clock.advance(Duration::from_secs(31));
    let probes = acquire_at_once(&pods, &agent, 2).await;
    assert_eq!(probes.len(), 3, "{reason:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_pods_make_one_trip_and_three_probes_under_the_slow_call_rate() {
    let config = BreakerConfig::builder()
        .slow_call_duration(Some(Duration::from_millis(500)))
        .slow_call_rate_threshold(Some(0.5))
        .minimum_calls(16)
        .build()
        .unwrap();
    let prefix = unique_prefix("policies-slow-race");
    one_trip_and_three_probes(
        &prefix,
        config,
        TransitionReason::SlowCallRate,
        |i, p| async move {
            let took = if i % 2 == 0 { 900 } else { 10 };
            p.success_after(Duration::from_millis(took)).await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_pods_make_one_trip_and_three_probes_when_all_get_a_retry_after() {
    let prefix = unique_prefix("policies-retry-race");
    one_trip_and_three_probes(
        &prefix,
        BreakerConfig::default(),
        TransitionReason::RetryAfter,
        |_, p| async move {
            p.failure_retry_after("429", Duration::from_secs(30)).await;
        },
    )
    .await;
}
