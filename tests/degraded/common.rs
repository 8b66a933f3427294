//! Pods on a real Redis with the degraded-mode settings spelled out, and
//! timed acquires.

use std::time::{Duration, Instant};

use fleet_breaker::{
    AgentId, BreakerConfig, CircuitBreaker, CircuitState, Permit, RedisStore, Rejected, StorePolicy,
};

use crate::support::{TestRedis, wait_until};

/// The store's bound on every Redis operation (the default, spelled out).
pub(crate) const TIMEOUT: Duration = Duration::from_millis(100);
/// Store-unavailable errors in a row that degrade a pod (the default).
pub(crate) const DEGRADE_AFTER: u32 = 3;
/// How often a degraded pod pings Redis (the default).
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// The bound from Redis answering again to the pod leaving
/// degraded mode.
pub(crate) const RECOVERY_BOUND: Duration = Duration::from_secs(2);
/// The most one acquire may take once the pod is degraded.
pub(crate) const DEGRADED_ACQUIRE_BOUND: Duration = Duration::from_millis(20);

pub(crate) fn id(agent: &str) -> AgentId {
    AgentId::new(agent).expect("valid agent id")
}

/// A Redis this test may kill and restart; `None` (with the reason printed)
/// when `REDIS_URL` points at someone else's.
pub(crate) async fn owned_redis() -> Option<TestRedis> {
    let redis = TestRedis::start().await;
    if redis.is_owned() {
        Some(redis)
    } else {
        eprintln!("skipped: needs a Redis this test may kill (REDIS_URL is someone else's)");
        None
    }
}

/// Two failures open a circuit, for 15 s: an open circuit stays open for
/// the whole test.
pub(crate) fn config() -> BreakerConfig {
    BreakerConfig::builder()
        .failure_threshold(2)
        .base_backoff(Duration::from_secs(10))
        .build()
        .expect("valid config")
}

/// How a test pod is set up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PodSpec {
    pub(crate) policy: StorePolicy,
    /// Without the cache every acquire and record is one store call, so
    /// tests can count the errors that degrade the pod.
    pub(crate) local_cache: bool,
}

impl PodSpec {
    pub(crate) fn uncached(policy: StorePolicy) -> Self {
        Self {
            policy,
            local_cache: false,
        }
    }

    pub(crate) fn cached(policy: StorePolicy) -> Self {
        Self {
            policy,
            local_cache: true,
        }
    }
}

/// A pod on the Redis at `url` (a server, or a `FaultProxy` in front of it).
pub(crate) async fn pod(url: String, prefix: &str, spec: PodSpec) -> CircuitBreaker {
    let store = RedisStore::builder(url)
        .prefix(prefix)
        .timeout(TIMEOUT)
        .pool_size(2)
        .build()
        .await
        .expect("connect to the test Redis");
    CircuitBreaker::builder()
        .store(store)
        .config(config())
        .policy(spec.policy)
        .local_cache(spec.local_cache)
        .max_staleness(Duration::from_millis(300))
        .degrade_after(DEGRADE_AFTER)
        .store_probe_interval(PROBE_INTERVAL)
        .build()
        .expect("valid breaker")
}

/// Opens `agent`'s circuit in Redis (two failures) and has `pod` see it open.
pub(crate) async fn open_in_redis(pod: &CircuitBreaker, agent: &AgentId) {
    for _ in 0..2 {
        pod.acquire(agent)
            .await
            .expect("closed")
            .failure("down")
            .await;
    }
    let rejected = pod.acquire(agent).await.expect_err("open now");
    assert_eq!(rejected.state, CircuitState::Open);
    assert!(!pod.is_degraded());
}

/// Acquires `agent` once, timed; the permit is handed back unsettled.
pub(crate) async fn timed_acquire(
    pod: &CircuitBreaker,
    agent: &AgentId,
) -> (Duration, Result<Permit, Rejected>) {
    let started = Instant::now();
    let result = pod.acquire(agent).await;
    (started.elapsed(), result)
}

/// Acquires each of `agents` in turn, `rounds` times in all; the slowest
/// acquire, and every result (permits neutral-dropped).
pub(crate) async fn timed_rounds(
    pod: &CircuitBreaker,
    agents: &[&AgentId],
    rounds: usize,
) -> (Duration, Vec<(AgentId, Result<(), Rejected>, bool)>) {
    let mut worst = Duration::ZERO;
    let mut results = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let agent = agents[i % agents.len()];
        let (took, result) = timed_acquire(pod, agent).await;
        worst = worst.max(took);
        let degraded_permit = result.as_ref().is_ok_and(Permit::is_degraded);
        results.push(((*agent).clone(), result.map(drop), degraded_permit));
    }
    (worst, results)
}

/// Acquires `agent` until the pod is degraded (each permit handed back);
/// how many acquires that took. Bounded by 5 s.
pub(crate) async fn drive_until_degraded(pod: &CircuitBreaker, agent: &AgentId) -> usize {
    let mut acquires = 0;
    let counter = &mut acquires;
    wait_until("the pod is degraded", Duration::from_secs(5), || {
        *counter += 1;
        let (pod, agent) = (pod.clone(), agent.clone());
        async move {
            drop(pod.acquire(&agent).await);
            pod.is_degraded()
        }
    })
    .await;
    acquires
}

/// Waits until the pod is out of degraded mode, within [`RECOVERY_BOUND`];
/// how long that took.
pub(crate) async fn wait_recovered(pod: &CircuitBreaker) -> Duration {
    let started = Instant::now();
    wait_until(
        "the pod leaves degraded mode",
        RECOVERY_BOUND,
        || async move { !pod.is_degraded() },
    )
    .await;
    started.elapsed()
}
