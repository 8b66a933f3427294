//! The feed is the same on both backends: a cache fed by the memory store's
//! feed follows its transitions as a cache fed by the Redis store's
//! (pub/sub) does, is trusted once the feed is complete, and is distrusted
//! when the feed stops.

use std::sync::Arc;
use std::time::Duration;

use fleet_breaker::store::{BreakerStore, FeedOptions, FeedTarget, Resync, StoreExt};
use fleet_breaker::testing::Cache;
use fleet_breaker::{
    AgentId, BreakerConfig, CircuitState, ForceMode, MemoryStore, RedisStore, SystemClock,
};

use crate::support::{TestRedis, unique_prefix, wait_until};

/// Starts `store`'s feed into a new cache, forces an agent open through the
/// store, and checks what the cache and a subscriber saw.
async fn a_cache_follows_the_feed(store: Arc<dyn BreakerStore>) {
    let kind = store.kind();
    let config = BreakerConfig::default();
    let agent = AgentId::new("fed-agent").expect("valid id");
    store
        .acquire(&config, &agent, "p-1")
        .await
        .expect("acquire");

    let cache = Arc::new(Cache::new(Duration::from_secs(1), Arc::new(SystemClock)));
    let resync: Resync = Arc::new(|_| Box::pin(async {}));
    let feed = store.feed().start(Some(FeedTarget {
        sink: cache.clone(),
        resync,
        options: FeedOptions {
            ping_interval: Duration::from_millis(100),
            ..FeedOptions::default()
        },
    }));
    let what = format!("the {kind} feed is trusted");
    wait_until(&what, Duration::from_secs(5), || {
        let trusted = feed.is_connected() && cache.is_subscribed();
        async move { trusted }
    })
    .await;
    let mut heard = feed.subscribe();

    let forced = store
        .force(&config, &agent, ForceMode::Open, None)
        .await
        .expect("force")
        .expect("a known agent");
    assert_eq!(forced.snapshot.state, CircuitState::ForcedOpen, "{kind}");

    let what = format!("the {kind} feed brings the transition to the cache");
    wait_until(&what, Duration::from_secs(5), || {
        let state = cache.state(&agent);
        async move { state == Some(CircuitState::ForcedOpen) }
    })
    .await;
    let transition = tokio::time::timeout(Duration::from_secs(5), heard.recv())
        .await
        .expect("a subscriber hears the transition in time")
        .expect("the channel is open");
    assert_eq!(transition.agent_id, agent, "{kind}");
    assert_eq!(transition.to, CircuitState::ForcedOpen, "{kind}");

    drop(feed);
    assert!(
        !cache.is_subscribed(),
        "a {kind} feed that stopped leaves its cache untrusted"
    );
}

#[tokio::test]
async fn a_cache_follows_the_memory_feed() {
    let store = MemoryStore::new();
    assert!(
        !store.feed().is_remote(),
        "answers at once: no cache needed"
    );
    a_cache_follows_the_feed(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_follows_the_redis_feed() {
    let redis = TestRedis::start().await;
    let store = RedisStore::builder(redis.url())
        .prefix(unique_prefix("feed"))
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("connect to the test Redis");
    assert!(store.feed().is_remote(), "every answer is a round trip");
    a_cache_follows_the_feed(Arc::new(store)).await;
}
