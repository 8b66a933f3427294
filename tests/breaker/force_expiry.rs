//! A force with a TTL ends on time, fleet-wide, with one transition, even
//! when no call touches the agent (issue 11.5).

use std::pin::Pin;
use std::time::{Duration, Instant};

use fleet_breaker::{
    AgentId, BreakerConfig, CircuitBreaker, CircuitState, ForceMode, MemoryStore, RedisStore,
    Transition, TransitionReason,
};
use futures::{Stream, StreamExt};

use crate::support::fleet::published;
use crate::support::{TestRedis, unique_prefix, wait_until};

/// The bound: the expiry within 1 s of the TTL.
const ON_TIME: Duration = Duration::from_secs(1);
const TTL: Duration = Duration::from_secs(1);

type Transitions = Pin<Box<dyn Stream<Item = Transition> + Send>>;

fn agent() -> AgentId {
    AgentId::new("agent-1").expect("valid agent id")
}

async fn store(redis: &TestRedis, prefix: &str) -> RedisStore {
    RedisStore::builder(redis.url())
        .prefix(prefix)
        .build()
        .await
        .expect("connect to the test Redis")
}

/// A pod with its subscription up.
async fn pod(redis: &TestRedis, prefix: &str) -> CircuitBreaker {
    let pod = CircuitBreaker::builder()
        .store(store(redis, prefix).await)
        .build()
        .expect("valid breaker");
    let watching = pod.clone();
    wait_until(
        "the pod's subscription is up",
        Duration::from_secs(5),
        || {
            let pod = watching.clone();
            async move { pod.cache().is_some_and(|cache| cache.is_subscribed()) }
        },
    )
    .await;
    pod
}

/// Waits for `agent`'s `force_expired` on `transitions`; when it came,
/// measured from `forced_at`.
async fn force_expired(
    transitions: &mut Transitions,
    forced_at: Instant,
    bound: Duration,
) -> Duration {
    let agent = agent();
    let found = tokio::time::timeout(bound, async {
        while let Some(t) = transitions.next().await {
            if t.agent_id == agent && t.reason == TransitionReason::ForceExpired {
                return Some(forced_at.elapsed());
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(took)) => took,
        _ => panic!("no force_expired transition within {bound:?} of the force"),
    }
}

/// Forces `agent` open for [`TTL`] through a bare store (as the CLI does:
/// no pod made the call), then waits, with no call, for both pods to see
/// it expire; exactly one `force_expired` is in the stream.
async fn force_ends_on_time_on_both_pods(redis: &TestRedis, prefix: &str, mode: ForceMode) {
    let pods = [pod(redis, prefix).await, pod(redis, prefix).await];
    let agent = agent();
    pods[0]
        .acquire(&agent)
        .await
        .expect("closed")
        .success()
        .await;
    let mut feeds: Vec<Transitions> = pods
        .iter()
        .map(|p| Box::pin(p.subscribe()) as Transitions)
        .collect();

    let admin = store(redis, prefix).await;
    let forced_at = Instant::now();
    let transition = fleet_breaker::store::StoreExt::force(
        &admin,
        &BreakerConfig::default(),
        &agent,
        mode,
        Some(TTL),
    )
    .await
    .expect("force")
    .expect("a known agent")
    .transition
    .expect("a transition");
    assert_eq!(transition.reason, TransitionReason::Forced);

    for feed in &mut feeds {
        let took = force_expired(feed, forced_at, TTL + 3 * ON_TIME).await;
        println!("{mode:?}: force_expired seen {took:?} after a {TTL:?} force");
        assert!(
            took <= TTL + ON_TIME,
            "the force ended {took:?} after it was set, more than 1 s past its {TTL:?} TTL"
        );
    }
    let expired: Vec<Transition> = published(redis, prefix)
        .await
        .into_iter()
        .filter(|t| t.reason == TransitionReason::ForceExpired)
        .collect();
    assert_eq!(
        expired.len(),
        1,
        "one transition, so one webhook: {expired:?}"
    );
    assert_eq!(expired[0].to, CircuitState::Closed);
    let snapshot = pods[1].snapshot(&agent).await.expect("snapshot");
    assert_eq!(snapshot.state, CircuitState::Closed);
    assert_eq!(
        snapshot.generation, expired[0].generation,
        "nothing after it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_open_with_a_ttl_ends_on_time_on_every_pod_with_no_call() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("force-expiry-open");
    force_ends_on_time_on_both_pods(&redis, &prefix, ForceMode::Open).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_closed_with_a_ttl_ends_on_time_on_every_pod_with_no_call() {
    // A forced-closed message carries no expiry: the pods read it.
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("force-expiry-closed");
    force_ends_on_time_on_both_pods(&redis, &prefix, ForceMode::Closed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_started_after_the_force_ends_it_on_time_once_it_has_read_the_agent() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("force-expiry-late-pod");
    let admin = store(&redis, &prefix).await;
    let agent = agent();
    let config = BreakerConfig::default();
    fleet_breaker::store::StoreExt::acquire(&admin, &config, &agent, "setup")
        .await
        .expect("acquire");
    let forced_at = Instant::now();
    fleet_breaker::store::StoreExt::force(&admin, &config, &agent, ForceMode::Open, Some(TTL))
        .await
        .expect("force")
        .expect("a known agent");

    // Started after the force: it learns of it from a read (a health or
    // metrics read, the resync after a reconnection, a call).
    let late = pod(&redis, &prefix).await;
    let mut feed: Transitions = Box::pin(late.subscribe());
    assert_eq!(
        late.metrics(&agent).await.expect("metrics").state,
        CircuitState::ForcedOpen
    );
    let took = force_expired(&mut feed, forced_at, TTL + 3 * ON_TIME).await;
    assert!(took <= TTL + ON_TIME, "ended {took:?} after it was set");
}

#[tokio::test]
async fn a_force_with_a_ttl_ends_on_time_on_the_embedded_store_with_no_call() {
    let breaker = CircuitBreaker::in_memory();
    let agent = agent();
    breaker
        .acquire(&agent)
        .await
        .expect("closed")
        .success()
        .await;
    let mut feed: Transitions = Box::pin(breaker.subscribe());
    let ttl = Duration::from_millis(300);
    let forced_at = Instant::now();
    breaker
        .force(&agent, ForceMode::Open, Some(ttl))
        .await
        .expect("force");

    let took = force_expired(&mut feed, forced_at, ttl + 3 * ON_TIME).await;
    assert!(took >= ttl, "not before the TTL: {took:?}");
    assert!(took <= ttl + ON_TIME, "ended {took:?} after it was set");
    // Ended by the store's timer, not by a read: a read now finds it
    // closed, in the generation of that one transition.
    let snapshot = breaker.snapshot(&agent).await.expect("snapshot");
    assert_eq!(snapshot.state, CircuitState::Closed);
    assert_eq!(
        snapshot.generation, 2,
        "forced, then expired: two transitions"
    );
}

#[tokio::test(start_paused = true)]
async fn the_embedded_timer_runs_on_tokio_time_with_an_injected_clock() {
    // A clock that moves with tokio time, and the timer turned on.
    let clock = fleet_breaker::ManualClock::default();
    let store = MemoryStore::with_clock(std::sync::Arc::new(clock.clone()));
    store.set_force_timer(true);
    let mut transitions = store.transitions();
    let agent = agent();
    let config = BreakerConfig::default();
    store.acquire_sync(&config, &agent, "setup");
    fleet_breaker::store::StoreExt::force(
        &store,
        &config,
        &agent,
        ForceMode::Closed,
        Some(Duration::from_secs(60)),
    )
    .await
    .expect("force")
    .expect("known");
    assert_eq!(
        transitions.recv().await.expect("forced").reason,
        TransitionReason::Forced
    );

    // 59.9 s on: nothing yet.
    clock.advance(Duration::from_millis(59_900));
    tokio::time::advance(Duration::from_millis(59_900)).await;
    assert!(transitions.try_recv().is_err(), "not before the TTL");
    // Past the TTL: the timer ends it.
    clock.advance(Duration::from_millis(100));
    tokio::time::advance(Duration::from_millis(100)).await;
    let expired = tokio::time::timeout(Duration::from_secs(1), transitions.recv())
        .await
        .expect("the timer fired")
        .expect("a transition");
    assert_eq!(expired.reason, TransitionReason::ForceExpired);
    assert_eq!(expired.at_ms, clock_now(&clock));
}

fn clock_now(clock: &fleet_breaker::ManualClock) -> u64 {
    fleet_breaker::Clock::now_ms(clock)
}
