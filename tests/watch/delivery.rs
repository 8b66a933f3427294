//! Transitions reach the cache and the subscribers, forward only.

use std::time::Duration;

use fleet_breaker::{
    BreakerConfig, CircuitBreaker, CircuitState, RedisStore, Snapshot, TransitionReason,
};

use crate::common::{
    agent, fast, generations_until, next, now_ms, publish, rig, spawn, transition, wait_connected,
};
use crate::support::{TestRedis, init_tracing, unique_prefix, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_transition_reaches_subscribers_and_the_cache() {
    let redis = TestRedis::start().await;
    let rig = rig(&redis, "watch-delivery", fast()).await;
    let mut rx = rig.watcher.subscribe();
    let mut conn = redis.connection().await;
    let a = agent("agent-1");

    let sent = transition(&a, 1);
    let receivers = publish(&mut conn, &rig.keys, &sent).await;

    assert_eq!(receivers, 1, "the watcher is the one subscriber");
    assert_eq!(next(&mut rx).await, sent);
    assert_eq!(rig.cache.state(&a), Some(CircuitState::Open));
    assert_eq!(rig.cache.generation(&a), Some(1));
    assert_eq!(rig.watcher.malformed(), 0);
    assert_eq!(rig.watcher.reconnects(), 0);
}

/// The messages the Lua scripts publish (transitions and failure-count
/// news) decode: none is counted as malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_made_by_the_redis_store_reach_the_watcher() {
    init_tracing();
    let redis = TestRedis::start().await;
    let store = RedisStore::builder(redis.url())
        .prefix(unique_prefix("watch-store"))
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("connect");
    let rig = spawn(&store, fast());
    wait_connected(&rig, 0).await;
    let mut rx = rig.watcher.subscribe();
    let breaker = CircuitBreaker::builder()
        .store(store)
        .config(BreakerConfig::default())
        .local_cache(false)
        .build()
        .expect("valid breaker");
    let a = agent("model-a");

    for _ in 0..BreakerConfig::default().failure_threshold {
        let permit = breaker.acquire(&a).await.expect("closed admits");
        permit.failure("down").await;
    }

    let seen = next(&mut rx).await;
    assert_eq!(
        (seen.from, seen.to, seen.generation),
        (CircuitState::Closed, CircuitState::Open, 1)
    );
    assert_eq!(seen.reason, TransitionReason::FailureThreshold);
    assert_eq!(seen.agent_id, a);
    assert_eq!(rig.cache.state(&a), Some(CircuitState::Open));
    // The first failure also published failure-count news on PREFIX:counts.
    assert_eq!(
        rig.watcher.malformed(),
        0,
        "the scripts' messages all decode"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_event_after_a_newer_snapshot_does_not_move_the_cache_back() {
    let redis = TestRedis::start().await;
    let rig = rig(&redis, "watch-order", fast()).await;
    let mut rx = rig.watcher.subscribe();
    let mut conn = redis.connection().await;
    let a = agent("agent-1");
    let mut snapshot = Snapshot::fresh(&BreakerConfig::default());
    snapshot.generation = 5;
    rig.cache.apply_snapshot(&a, &snapshot, now_ms());

    publish(&mut conn, &rig.keys, &transition(&a, 3)).await;
    assert_eq!(next(&mut rx).await.generation, 3);

    assert_eq!(
        rig.cache.generation(&a),
        Some(5),
        "generation 3 is older than the snapshot"
    );
    assert_eq!(rig.cache.state(&a), Some(CircuitState::Closed));

    publish(&mut conn, &rig.keys, &transition(&a, 6)).await;
    assert_eq!(next(&mut rx).await.generation, 6);
    assert_eq!(
        rig.cache.generation(&a),
        Some(6),
        "a newer event moves it forward"
    );
    assert_eq!(rig.cache.state(&a), Some(CircuitState::HalfOpen));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_each_generation_once_and_only_forward() {
    let redis = TestRedis::start().await;
    let rig = rig(&redis, "watch-forward", fast()).await;
    let mut rx = rig.watcher.subscribe();
    let mut conn = redis.connection().await;
    let (a, b) = (agent("agent-a"), agent("agent-b"));

    for generation in [3, 2, 3, 1, 4] {
        publish(&mut conn, &rig.keys, &transition(&a, generation)).await;
    }
    // Another agent's history is its own.
    publish(&mut conn, &rig.keys, &transition(&b, 1)).await;

    let mut seen = Vec::new();
    for _ in 0..3 {
        let t = next(&mut rx).await;
        seen.push((t.agent_id.to_string(), t.generation));
    }
    assert_eq!(
        seen,
        [
            ("agent-a".into(), 3),
            ("agent-a".into(), 4),
            ("agent-b".into(), 1)
        ]
    );
    assert!(rx.try_recv().is_err(), "nothing else was delivered");
    assert_eq!(rig.cache.generation(&a), Some(4));

    // Still forward after more: generation 4 again is old news.
    publish(&mut conn, &rig.keys, &transition(&a, 4)).await;
    publish(&mut conn, &rig.keys, &transition(&a, 5)).await;
    assert_eq!(generations_until(&mut rx, &a, 5).await, [5]);
    wait_until(
        "the cache reaches generation 5",
        Duration::from_secs(1),
        || async { rig.cache.generation(&a) == Some(5) },
    )
    .await;
}
