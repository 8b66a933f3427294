//! A Redis stall while an agent is half-open (issue 12.4): the probe
//! outcomes that could not be written are kept and written once Redis
//! answers, so the healthy agent closes about one probe interval after the
//! stall, not when the leases lapse (`recovery_timeout`, 30 s). A retried
//! outcome whose first write did land counts nothing twice.

use std::time::{Duration, Instant};

use fleet_breaker::{AgentId, BreakerConfig, CircuitBreaker, CircuitState, Permit, RedisStore};

use crate::common::{DEGRADE_AFTER, PROBE_INTERVAL, TIMEOUT, id, on_loopback, serial};
use crate::support::proxy::FaultProxy;
use crate::support::{TestRedis, unique_prefix, wait_for, wait_until};

/// Far below the 30 s lease the outcomes used to wait for, far above the
/// probe interval (200 ms) plus a resync: a bound that only a lost outcome
/// breaks. The measured figure is printed.
const CLOSED_BOUND: Duration = Duration::from_secs(5);

/// One failure opens; three probes, each one success, close; the first
/// opening lasts 150 ms; a probe's lease is the default 30 s.
fn config() -> BreakerConfig {
    BreakerConfig::builder()
        .failure_threshold(1)
        .half_open_max_calls(3)
        .base_backoff(Duration::from_millis(100))
        .build()
        .expect("valid config")
}

async fn store(url: String, prefix: &str) -> RedisStore {
    RedisStore::builder(url)
        .prefix(prefix)
        .timeout(TIMEOUT)
        .pool_size(2)
        .build()
        .await
        .expect("connect to the test Redis")
}

/// A pod that reaches Redis through `proxy`, with the default degraded-mode
/// settings spelled out.
async fn pod(proxy: &FaultProxy, prefix: &str) -> CircuitBreaker {
    CircuitBreaker::builder()
        .store(store(proxy.url(), prefix).await)
        .config(config())
        .degrade_after(DEGRADE_AFTER)
        .store_probe_interval(PROBE_INTERVAL)
        .build()
        .expect("valid breaker")
}

/// Opens `agent`, waits out the backoff, and takes the three probes.
async fn half_open_with_three_probes(pod: &CircuitBreaker, agent: &AgentId) -> Vec<Permit> {
    pod.acquire(agent)
        .await
        .expect("closed")
        .failure("down")
        .await;
    let mut probes = Vec::new();
    while probes.len() < 3 {
        // Rejected as open until the backoff ends.
        let permit = wait_for(
            "the backoff ends and a probe is granted",
            Duration::from_secs(3),
            || async {
                match pod.acquire(agent).await {
                    Ok(permit) => Some(permit),
                    Err(rejected) => {
                        assert_eq!(rejected.state, CircuitState::Open);
                        None
                    }
                }
            },
        )
        .await;
        assert!(permit.is_probe(), "a half-open circuit grants probes");
        probes.push(permit);
    }
    probes
}

/// A pod behind a fault proxy whose `agent-1` is half-open with its three
/// probes taken, and a store that reads Redis directly (the truth).
struct HalfOpen {
    _redis: TestRedis,
    proxy: FaultProxy,
    pod: CircuitBreaker,
    truth: RedisStore,
    agent: AgentId,
    probes: Vec<Permit>,
}

/// [`HalfOpen`] on a fresh Redis and `name`'s prefix; `None` when the test
/// Redis is not on loopback (the proxy needs it).
async fn half_open_behind_a_proxy(name: &str) -> Option<HalfOpen> {
    let redis = TestRedis::start().await;
    if !on_loopback(&redis) {
        return None;
    }
    let prefix = unique_prefix(name);
    let proxy = FaultProxy::start(redis.port()).await;
    let pod = pod(&proxy, &prefix).await;
    let truth = store(redis.url(), &prefix).await;
    let agent = id("agent-1");
    let probes = half_open_with_three_probes(&pod, &agent).await;
    Some(HalfOpen {
        _redis: redis,
        proxy,
        pod,
        truth,
        agent,
        probes,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_agent_closes_within_a_probe_interval_after_a_redis_stall() {
    let _one_at_a_time = serial().await;
    let Some(HalfOpen {
        _redis,
        proxy,
        pod,
        truth,
        agent,
        mut probes,
    }) = half_open_behind_a_proxy("stall-half-open").await
    else {
        return;
    };

    // The stall. Two probe outcomes are sent and time out (their bytes are
    // then lost with the connection); a call to another agent times out
    // too, the third error in a row, so the pod is degraded and the last
    // outcome is not even sent.
    proxy.blackhole();
    probes.remove(0).success().await;
    probes.remove(0).success().await;
    let _ = pod.acquire(&id("agent-2")).await;
    assert!(pod.is_degraded(), "three store errors in a row");
    probes.remove(0).success().await;
    proxy.reset_all();
    proxy.heal();
    let back = Instant::now();

    let (truth_ref, agent_ref) = (&truth, &agent);
    wait_until(
        "agent-1 closes after the stall",
        CLOSED_BOUND,
        || async move {
            let read =
                fleet_breaker::store::StoreExt::snapshot(truth_ref, &config(), agent_ref).await;
            read.ok()
                .flatten()
                .is_some_and(|applied| applied.snapshot.state == CircuitState::Closed)
        },
    )
    .await;
    let took = back.elapsed();
    println!(
        "time to closed after the stall ended: {} ms",
        took.as_millis()
    );
    let watched = pod.clone();
    wait_until(
        "the pod counts its kept outcomes written",
        CLOSED_BOUND,
        || {
            let pod = watched.clone();
            async move { pod.store_stats().probe_outcomes_written == 3 }
        },
    )
    .await;
    assert_eq!(pod.store_stats().probe_outcomes_kept, 3);
    let snapshot = fleet_breaker::store::StoreExt::snapshot(&truth, &config(), &agent)
        .await
        .expect("read")
        .expect("known")
        .snapshot;
    assert_eq!(snapshot.success_count, 3, "each probe success counted once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_outcome_whose_first_write_landed_is_not_counted_twice() {
    let _one_at_a_time = serial().await;
    let Some(HalfOpen {
        _redis,
        proxy,
        pod,
        truth,
        agent,
        mut probes,
    }) = half_open_behind_a_proxy("stall-write-landed").await
    else {
        return;
    };

    // The outcome is sent into the stall and times out; when the stall
    // ends its bytes go on and the first write lands, then the retry.
    proxy.blackhole();
    probes.remove(0).success().await;
    proxy.heal();
    let watched = pod.clone();
    wait_until("the kept outcome is written again", CLOSED_BOUND, || {
        let pod = watched.clone();
        async move { pod.store_stats().probe_outcomes_written == 1 }
    })
    .await;

    let snapshot = fleet_breaker::store::StoreExt::snapshot(&truth, &config(), &agent)
        .await
        .expect("read")
        .expect("known")
        .snapshot;
    assert_eq!(snapshot.state, CircuitState::HalfOpen);
    assert_eq!(snapshot.half_open_successes, 1, "the retry counted nothing");
    assert_eq!(snapshot.success_count, 1, "the retry counted nothing");
    assert_eq!(
        snapshot.probes.len(),
        2,
        "the two other probes still leased"
    );

    // A second stall, once the first outcome's retry is done: the next
    // outcome is kept and written too.
    proxy.blackhole();
    probes.remove(0).success().await;
    proxy.heal();
    let watched = pod.clone();
    wait_until("the second kept outcome is written", CLOSED_BOUND, || {
        let pod = watched.clone();
        async move { pod.store_stats().probe_outcomes_written == 2 }
    })
    .await;
    let snapshot = fleet_breaker::store::StoreExt::snapshot(&truth, &config(), &agent)
        .await
        .expect("read")
        .expect("known")
        .snapshot;
    assert_eq!(snapshot.half_open_successes, 2);
    assert_eq!(snapshot.success_count, 2);
    assert!(!pod.is_degraded(), "single errors, never three in a row");
    drop(probes);
}
