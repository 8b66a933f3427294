//! Helpers for tests that race many pods on one agent.

use fleet_breaker::{AgentId, CircuitBreaker, Permit};
use futures::future::join_all;

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
