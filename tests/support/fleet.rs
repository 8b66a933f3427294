//! Helpers for tests that race many pods on one agent.

use fleet_breaker::{AgentId, CircuitBreaker, ManualClock, Permit};
use futures::future::join_all;

/// A manual clock reading the wall-clock time now, for a fleet whose
/// stores all take it as their test clock override
/// (`RedisStoreBuilder::clock_override`): one time for every pod, as Redis
/// `TIME` would be, that the test moves past a backoff at once instead of
/// sleeping through it.
pub fn fleet_clock() -> ManualClock {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the system clock is after 1970");
    ManualClock::new(u64::try_from(now.as_millis()).expect("ms since 1970 fit in u64"))
}

/// Every pod asks for a permit `times` times at once; the permits granted,
/// held (not settled).
pub async fn acquire_at_once(
    pods: &[CircuitBreaker],
    agent: &AgentId,
    times: usize,
) -> Vec<Permit> {
    let attempts = pods
        .iter()
        .flat_map(|pod| (0..times).map(move |_| pod.acquire(agent)));
    join_all(attempts)
        .await
        .into_iter()
        .filter_map(Result::ok)
        .collect()
}

/// Waits until every one of `pods` has left degraded mode, each within
/// `bound`.
pub async fn all_recovered(pods: &[CircuitBreaker], bound: std::time::Duration) {
    for pod in pods {
        super::wait_until("every pod leaves degraded mode", bound, || async {
            !pod.is_degraded()
        })
        .await;
    }
}

/// Waits (up to 2 s) until the cache of every pod that has one holds
/// `agent` as the store has it (state and generation): from then on no pod
/// decides from an older view. Reads the store through `pods[0]`.
pub async fn caches_hold_the_store_view(pods: &[CircuitBreaker], agent: &AgentId) {
    let truth = pods[0]
        .snapshot(agent)
        .await
        .expect("the store answers for a known agent");
    let view = (Some(truth.state), Some(truth.generation));
    super::wait_until(
        &format!(
            "every pod's cache holds {agent} {} at generation {}",
            truth.state, truth.generation
        ),
        std::time::Duration::from_secs(2),
        || async {
            pods.iter().all(|pod| {
                pod.cache()
                    .is_none_or(|cache| (cache.state(agent), cache.generation(agent)) == view)
            })
        },
    )
    .await;
}

/// Every transition in the fleet's stream `PREFIX:transitions`, oldest first.
pub async fn published(redis: &super::TestRedis, prefix: &str) -> Vec<fleet_breaker::Transition> {
    use redis::AsyncCommands;
    let mut conn = redis.connection().await;
    let reply: redis::streams::StreamRangeReply = conn
        .xrange_all(format!("{prefix}:transitions"))
        .await
        .expect("read stream");
    reply
        .ids
        .iter()
        .map(|e| serde_json::from_str(&e.get::<String>("msg").expect("msg")).expect("json"))
        .collect()
}
