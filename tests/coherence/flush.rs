//! An agent's history starting again (its hash deleted, or `FLUSHALL`):
//! the feed of transitions (what SSE, `watch`, the demo and the dashboard
//! read) and the local cache follow the new generations at once.

use std::time::Duration;

use fleet_breaker::{AgentId, CircuitBreaker, CircuitState, ForceMode, Transition};
use futures::{Stream, StreamExt};

use crate::fleet;
use crate::support::{TestRedis, unique_prefix, wait_until};

/// The bound on every wait for a transition.
pub(crate) const WAIT: Duration = Duration::from_secs(3);

/// The next transition of `agent` on `feed`, within [`WAIT`].
pub(crate) async fn next_of(
    feed: &mut (impl Stream<Item = Transition> + Unpin),
    agent: &AgentId,
) -> Transition {
    let wait = async {
        loop {
            let t = feed.next().await.expect("the feed is open");
            if t.agent_id == *agent {
                return t;
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("a transition of {agent} within {WAIT:?}"))
}

/// A pod whose subscription is up.
pub(crate) async fn watching_pod(redis: &TestRedis, prefix: &str) -> CircuitBreaker {
    let pod = fleet::pod(redis, prefix).await;
    wait_until(
        "the pod's subscription is up",
        Duration::from_secs(5),
        || {
            let pod = pod.clone();
            async move { pod.is_watching() && pod.cache().unwrap().is_subscribed() }
        },
    )
    .await;
    pod
}

/// Forces `agent` open then back to auto, `times` times: 2 x `times`
/// transitions, the last one to closed.
pub(crate) async fn flap(pod: &CircuitBreaker, agent: &AgentId, times: usize) {
    for _ in 0..times {
        pod.force(agent, ForceMode::Open, None).await.unwrap();
        pod.force(agent, ForceMode::Auto, None).await.unwrap();
    }
}

/// Makes `agent` known to the store (an acquire that goes to the store).
async fn create(pod: &CircuitBreaker, agent: &AgentId) {
    pod.acquire(agent).await.unwrap().success().await;
}

/// `agent` at generation 6 (closed), every transition seen on `feed`;
/// then `wipe` runs, and the agent, made again, goes through generations
/// 1 and 2: both must come on `feed`.
async fn history_starts_again(test: &str, wipe: impl AsyncFnOnce(&TestRedis, &str, &AgentId)) {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix(test);
    let pod = watching_pod(&redis, &prefix).await;
    let mut feed = Box::pin(pod.subscribe());
    let agent = AgentId::new("agent-flushed").unwrap();
    create(&pod, &agent).await;
    flap(&pod, &agent, 3).await;
    for generation in 1..=6 {
        assert_eq!(next_of(&mut feed, &agent).await.generation, generation);
    }

    wipe(&redis, &prefix, &agent).await;
    let other = fleet::pod(&redis, &prefix).await;
    create(&other, &agent).await;
    let forced_at = std::time::Instant::now();
    other.force(&agent, ForceMode::Open, None).await.unwrap();

    let first = next_of(&mut feed, &agent).await;
    println!(
        "{test}: generation 1 of the new history reached the feed {:?} after the force",
        forced_at.elapsed()
    );
    assert_eq!((first.generation, first.to), (1, CircuitState::ForcedOpen));
    other.force(&agent, ForceMode::Auto, None).await.unwrap();
    let second = next_of(&mut feed, &agent).await;
    assert_eq!((second.generation, second.to), (2, CircuitState::Closed));
    assert_ne!(first.epoch, 0, "the new history has an epoch");
    assert_eq!(first.epoch, second.epoch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_flushall_the_feed_delivers_the_new_generations_at_once() {
    history_starts_again("flush-feed", async |redis, _, _| redis.flushall().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_agent_hash_is_deleted_the_feed_delivers_the_new_generations_at_once() {
    history_starts_again("flush-del-feed", async |redis, prefix, agent| {
        let _: () = redis::cmd("DEL")
            .arg(format!("{prefix}:{{{agent}}}:state"))
            .query_async(&mut redis.connection().await)
            .await
            .unwrap();
    })
    .await;
}

/// The cache of a pod that followed the old history does not stay on it:
/// an agent forced open in the new one is rejected, not admitted from the
/// cached closed circuit of a higher generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_flushall_a_pod_cache_follows_the_new_history() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("flush-cache");
    let pod = watching_pod(&redis, &prefix).await;
    let mut feed = Box::pin(pod.subscribe());
    let agent = AgentId::new("agent-cached").unwrap();
    create(&pod, &agent).await;
    flap(&pod, &agent, 2).await;
    create(&pod, &agent).await;
    let cache = pod.cache().unwrap();
    assert_eq!(cache.generation(&agent), Some(4));
    assert_eq!(cache.state(&agent), Some(CircuitState::Closed));
    for generation in 1..=4 {
        assert_eq!(next_of(&mut feed, &agent).await.generation, generation);
    }

    redis.flushall().await;
    let other = fleet::pod(&redis, &prefix).await;
    create(&other, &agent).await;
    other.force(&agent, ForceMode::Open, None).await.unwrap();
    // The pod has heard of the new history.
    let opened = next_of(&mut feed, &agent).await;
    assert_eq!(
        (opened.generation, opened.to),
        (1, CircuitState::ForcedOpen)
    );

    match pod.acquire(&agent).await {
        Err(rejected) => {
            assert_eq!(rejected.state, CircuitState::ForcedOpen);
        }
        other => panic!(
            "a forced open agent is rejected, got {:?}",
            other.map(|_| "a permit")
        ),
    }
    assert_eq!(cache.generation(&agent), Some(1));
    assert_eq!(cache.state(&agent), Some(CircuitState::ForcedOpen));
}
