//! Successes on a clean closed circuit are counted locally and flushed; a
//! success that resets a fleet-wide failure streak reaches Redis at once.

use std::time::Duration;

use fleet_breaker::AgentId;

use crate::fleet::{fleet, script_calls, warm};
use crate::support::{TestRedis, unique_prefix, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successes_on_a_clean_circuit_cost_no_round_trip_and_are_flushed() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("coherence-local");
    let pods = fleet(&redis, &prefix, 2).await;
    let agent = AgentId::new("agent-1").unwrap();
    warm(&pods, &agent).await;
    let counted_before = pods[0].snapshot(&agent).await.unwrap().success_count;

    let before = script_calls(&redis).await;
    for _ in 0..100 {
        pods[0].acquire(&agent).await.unwrap().success().await;
    }
    let handle = pods[0].agent(&agent);
    for _ in 0..100 {
        let permit = handle.try_acquire().expect("decided here").unwrap();
        permit.try_success().expect("counted here");
    }
    let round_trips = script_calls(&redis).await - before;
    assert!(
        round_trips <= 2,
        "200 calls cost {round_trips} script calls (flusher at most)"
    );

    pods[0].flush().await.unwrap();
    let counted = pods[1].snapshot(&agent).await.unwrap().success_count;
    assert_eq!(
        counted - counted_before,
        200,
        "every local success reached Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_after_a_failure_elsewhere_reaches_redis_at_once() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("coherence-streak");
    let pods = fleet(&redis, &prefix, 2).await;
    let agent = AgentId::new("agent-1").unwrap();
    warm(&pods, &agent).await;

    pods[0].acquire(&agent).await.unwrap().failure("down").await;
    assert_eq!(pods[0].snapshot(&agent).await.unwrap().failure_count, 1);
    // Pod 1 hears (on PREFIX:counts) that the fleet-wide failure count left
    // zero, so its next success goes to Redis and resets the streak. A flush
    // of locally counted successes never resets it (model::flush), so a zero
    // count proves a record script ran.
    let (pod, agent_id) = (pods[1].clone(), agent.clone());
    wait_until(
        "a success on pod 1 resets the streak in Redis",
        Duration::from_secs(2),
        || {
            let (pod, agent) = (pod.clone(), agent_id.clone());
            async move {
                pod.acquire(&agent).await.unwrap().success().await;
                pod.snapshot(&agent).await.unwrap().failure_count == 0
            }
        },
    )
    .await;
    assert_eq!(pods[0].snapshot(&agent).await.unwrap().failure_count, 0);
}
