//! Once degraded, a pod decides by its policy without calling Redis: no
//! latency per call, whatever the outage looks like.

use std::time::{Duration, Instant};

use fleet_breaker::{CircuitState, RejectCause, StorePolicy, StoreStats, StoreStatus};
use redis::AsyncCommands;

use crate::common::{
    DEGRADE_AFTER, DEGRADED_ACQUIRE_BOUND, PROBE_INTERVAL, PodSpec, TIMEOUT, id, open_in_redis,
    owned_redis, pod, timed_acquire, timed_rounds, wait_recovered,
};
use crate::support::proxy::FaultProxy;
use crate::support::{TestRedis, unique_prefix, wait_until};

/// Acquires while the store is down and the pod not yet degraded: each one
/// fails on the store, is decided by the policy, and counts; the last one
/// degrades the pod.
async fn degrade_by_acquires(
    pod: &fleet_breaker::CircuitBreaker,
    agent: &fleet_breaker::AgentId,
) -> Vec<Duration> {
    let mut took = Vec::new();
    for n in 1..=DEGRADE_AFTER {
        assert!(!pod.is_degraded(), "degraded after only {} errors", n - 1);
        let (elapsed, result) = timed_acquire(pod, agent).await;
        took.push(elapsed);
        drop(result);
    }
    assert!(
        pod.is_degraded(),
        "not degraded after {DEGRADE_AFTER} errors"
    );
    took
}

/// The prober's failed pings are the only store errors a degraded pod adds:
/// at most one per probe interval, however many calls it decides.
fn assert_no_store_calls_while_degraded(before: StoreStats, after: StoreStats, elapsed: Duration) {
    let probes = u64::try_from(elapsed.as_millis() / PROBE_INTERVAL.as_millis()).unwrap() + 1;
    assert!(
        after.errors - before.errors <= probes,
        "{} store errors in {elapsed:?} while degraded: more than the prober's {probes} pings",
        after.errors - before.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_local_keeps_an_open_circuit_open_and_answers_in_milliseconds_once_degraded() {
    let Some(mut redis) = owned_redis().await else {
        return;
    };
    let prefix = unique_prefix("degraded-fail-local");
    let pod = pod(
        redis.url(),
        &prefix,
        PodSpec::uncached(StorePolicy::FailLocal),
    )
    .await;
    let (open, closed) = (id("agent-open"), id("agent-closed"));
    open_in_redis(&pod, &open).await;
    pod.acquire(&closed).await.unwrap().success().await;

    redis.kill();
    degrade_by_acquires(&pod, &closed).await;
    let stats = pod.store_stats();
    assert_eq!(
        (stats.errors, stats.degraded_entered, stats.degraded_left),
        (u64::from(DEGRADE_AFTER), 1, 0)
    );
    let StoreStatus::Degraded { since_ms, reason } = pod.store_status() else {
        panic!("degraded, so the status says so: {:?}", pod.store_status());
    };
    assert!(
        since_ms > 1_600_000_000_000,
        "ms since the epoch: {since_ms}"
    );
    assert!(reason.contains("Redis"), "says what failed: {reason}");

    let started = Instant::now();
    let (worst, results) = timed_rounds(&pod, &[&open, &closed], 200).await;
    assert_no_store_calls_while_degraded(stats, pod.store_stats(), started.elapsed());
    println!("FailLocal, Redis killed: slowest of 200 degraded acquires {worst:?}");
    assert!(
        worst < DEGRADED_ACQUIRE_BOUND,
        "a degraded acquire took {worst:?}"
    );
    for (agent, result, degraded_permit) in results {
        if agent == open {
            let rejected = result.expect_err("the last snapshot said open: rejected locally");
            assert_eq!(
                (rejected.state, rejected.cause),
                (CircuitState::Open, RejectCause::Circuit)
            );
            assert!(rejected.retry_after.is_some());
        } else {
            result.expect("closed in the last snapshot: admitted locally");
            assert!(degraded_permit, "decided by the local fallback");
        }
    }
}

/// A pod under `policy` with an open circuit in Redis, degraded by a killed
/// Redis; 200 acquires of that agent, timed.
async fn degraded_decisions(
    policy: StorePolicy,
    name: &str,
) -> Option<(
    Duration,
    Vec<Result<(), fleet_breaker::Rejected>>,
    Vec<bool>,
)> {
    let mut redis = owned_redis().await?;
    let pod = pod(redis.url(), &unique_prefix(name), PodSpec::uncached(policy)).await;
    let agent = id("agent-1");
    open_in_redis(&pod, &agent).await;
    redis.kill();
    degrade_by_acquires(&pod, &agent).await;
    let (worst, results) = timed_rounds(&pod, &[&agent], 200).await;
    let (results, degraded): (Vec<_>, Vec<_>) = results
        .into_iter()
        .map(|(_, result, degraded)| (result, degraded))
        .unzip();
    Some((worst, results, degraded))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_admits_every_call_once_degraded_even_on_an_open_circuit() {
    let Some((worst, results, degraded)) =
        degraded_decisions(StorePolicy::FailOpen, "degraded-fail-open").await
    else {
        return;
    };
    println!("FailOpen, Redis killed: slowest of 200 degraded acquires {worst:?}");
    assert!(worst < DEGRADED_ACQUIRE_BOUND, "{worst:?}");
    assert!(results.iter().all(Result::is_ok), "every call admitted");
    assert!(degraded.iter().all(|d| *d), "every permit says degraded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_rejects_every_call_as_store_unavailable_once_degraded() {
    let Some((worst, results, _)) =
        degraded_decisions(StorePolicy::FailClosed, "degraded-fail-closed").await
    else {
        return;
    };
    println!("FailClosed, Redis killed: slowest of 200 degraded acquires {worst:?}");
    assert!(worst < DEGRADED_ACQUIRE_BOUND, "{worst:?}");
    for result in results {
        let rejected = result.expect_err("fail-closed rejects");
        assert_eq!(rejected.cause, RejectCause::StoreUnavailable);
        assert_eq!(rejected.retry_after, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_store_costs_the_timeout_only_until_the_pod_degrades() {
    let redis = TestRedis::start().await;
    if !redis.url().starts_with("redis://127.0.0.1:") {
        eprintln!("skipped: the fault proxy forwards to 127.0.0.1, and REDIS_URL is elsewhere");
        return;
    }
    let proxy = FaultProxy::start(redis.port()).await;
    let prefix = unique_prefix("degraded-blackhole");
    let pod = pod(
        proxy.url(),
        &prefix,
        PodSpec::uncached(StorePolicy::FailLocal),
    )
    .await;
    let agent = id("agent-1");
    pod.acquire(&agent).await.unwrap().success().await;

    proxy.blackhole();
    let before = degrade_by_acquires(&pod, &agent).await;
    for took in &before {
        assert!(
            *took >= TIMEOUT.mul_f64(0.9),
            "an acquire before degrading waits for the {TIMEOUT:?} timeout: {took:?}"
        );
    }
    let stats = pod.store_stats();
    let started = Instant::now();
    let (worst, results) = timed_rounds(&pod, &[&agent], 200).await;
    assert_no_store_calls_while_degraded(stats, pod.store_stats(), started.elapsed());
    println!(
        "FailLocal, Redis blackholed: acquires before degrading {before:?}; \
         slowest of 200 degraded acquires {worst:?}"
    );
    assert!(worst < DEGRADED_ACQUIRE_BOUND, "{worst:?}");
    assert!(
        results
            .iter()
            .all(|(_, r, degraded)| r.is_ok() && *degraded)
    );

    proxy.heal();
    let took = wait_recovered(&pod).await;
    println!("blackhole healed: out of degraded mode after {took:?}");
    let permit = pod.acquire(&agent).await.expect("closed in Redis");
    assert!(!permit.is_degraded(), "decided by Redis again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_answer_between_errors_starts_the_count_again() {
    let redis = TestRedis::start().await;
    if !redis.url().starts_with("redis://127.0.0.1:") {
        eprintln!("skipped: the fault proxy forwards to 127.0.0.1, and REDIS_URL is elsewhere");
        return;
    }
    let proxy = FaultProxy::start(redis.port()).await;
    let pod = pod(
        proxy.url(),
        &unique_prefix("degraded-count"),
        PodSpec::uncached(StorePolicy::FailLocal),
    )
    .await;
    let agent = id("agent-1");
    let cut = || {
        proxy.refuse(true);
        proxy.reset_all();
    };

    cut();
    for _ in 1..DEGRADE_AFTER {
        let permit = pod.acquire(&agent).await.expect("fallback admits");
        assert!(permit.is_degraded(), "the store call failed");
    }
    assert_eq!(pod.store_stats().errors, u64::from(DEGRADE_AFTER - 1));
    proxy.heal();
    let permit = pod.acquire(&agent).await.expect("Redis admits");
    assert!(!permit.is_degraded(), "the store answered");
    drop(permit);

    cut();
    for _ in 1..DEGRADE_AFTER {
        drop(pod.acquire(&agent).await);
    }
    assert!(
        !pod.is_degraded(),
        "{} errors since the last answer, not {DEGRADE_AFTER}",
        DEGRADE_AFTER - 1
    );
    drop(pod.acquire(&agent).await);
    assert!(pod.is_degraded());
    assert_eq!(pod.store_stats().errors, 2 * u64::from(DEGRADE_AFTER) - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_data_in_one_agent_follows_the_policy_but_never_degrades_the_pod() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("degraded-bad-data");
    let pod = pod(
        redis.url(),
        &prefix,
        PodSpec::uncached(StorePolicy::FailLocal),
    )
    .await;
    let (bad, good) = (id("bad"), id("good"));
    pod.acquire(&bad).await.unwrap().success().await;
    let mut conn = redis.connection().await;
    let _: () = conn
        .hset(format!("{prefix}:{{bad}}:state"), "failure_count", "banana")
        .await
        .unwrap();

    for _ in 0..3 * DEGRADE_AFTER {
        let permit = pod.acquire(&bad).await.expect("the fallback admits");
        assert!(
            permit.is_degraded(),
            "decided locally: Redis holds bad data"
        );
    }
    assert!(!pod.is_degraded(), "one agent's bad data is not an outage");
    assert_eq!(pod.store_stats(), StoreStats::default());
    let permit = pod.acquire(&good).await.expect("closed");
    assert!(!permit.is_degraded(), "other agents are decided by Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_another_pod_opened_stays_open_in_the_local_fallback() {
    let Some(mut redis) = owned_redis().await else {
        return;
    };
    let prefix = unique_prefix("degraded-seed");
    let spec = PodSpec::cached(StorePolicy::FailLocal);
    let (pod_a, pod_b) = (
        pod(redis.url(), &prefix, spec).await,
        pod(redis.url(), &prefix, spec).await,
    );
    let agent = id("agent-1");
    // Pod A last heard from the store that agent-1 was closed and clean...
    pod_a.acquire(&agent).await.unwrap().success().await;
    // ...then pod B opens it, and pod A learns it only from the transition.
    open_in_redis(&pod_b, &agent).await;
    let cache = pod_a.cache().expect("a Redis store has a cache").clone();
    wait_until(
        "pod A's cache hears that agent-1 opened",
        Duration::from_secs(2),
        || {
            let cache = cache.clone();
            let agent = agent.clone();
            async move { cache.state(&agent) == Some(CircuitState::Open) }
        },
    )
    .await;

    redis.kill();
    // Once the subscription is found dead, the cache decides nothing: each
    // acquire tries Redis, then the fallback decides.
    wait_until(
        "pod A stops trusting its cache",
        Duration::from_secs(2),
        || {
            let cache = cache.clone();
            async move { !cache.is_subscribed() }
        },
    )
    .await;
    for n in 0..2 * DEGRADE_AFTER {
        let rejected = pod_a
            .acquire(&agent)
            .await
            .expect_err("open fleet-wide when Redis went: never called");
        assert_eq!(rejected.state, CircuitState::Open, "acquire {n}");
    }
    assert!(pod_a.is_degraded());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_agent_policy_overrides_the_breakers_for_that_agent_alone() {
    let Some(mut redis) = owned_redis().await else {
        return;
    };
    let store = fleet_breaker::RedisStore::builder(redis.url())
        .prefix(unique_prefix("degraded-per-agent"))
        .timeout(TIMEOUT)
        .build()
        .await
        .unwrap();
    let (payments, search) = (id("payments"), id("search"));
    let pod = fleet_breaker::CircuitBreaker::builder()
        .store(store)
        .config(crate::common::config())
        .policy(StorePolicy::FailOpen)
        .agent_policy(payments.clone(), StorePolicy::FailClosed)
        .local_cache(false)
        .degrade_after(DEGRADE_AFTER)
        .store_probe_interval(PROBE_INTERVAL)
        .build()
        .unwrap();
    assert_eq!(pod.policy_for(&payments), StorePolicy::FailClosed);
    assert_eq!(pod.policy_for(&search), StorePolicy::FailOpen);
    for agent in [&payments, &search] {
        pod.acquire(agent).await.unwrap().success().await;
    }

    redis.kill();
    degrade_by_acquires(&pod, &search).await;
    for _ in 0..20 {
        let rejected = pod
            .acquire(&payments)
            .await
            .expect_err("FailClosed for payments");
        assert_eq!(rejected.cause, RejectCause::StoreUnavailable);
        let permit = pod.acquire(&search).await.expect("FailOpen for the rest");
        assert!(permit.is_degraded());
        permit.success().await;
    }
}
