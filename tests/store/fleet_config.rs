//! Pods that disagree, on one Redis: each breaker publishes its config's
//! fingerprint in `PREFIX:configs` at start, and each check names the pods
//! whose config differs; entries of pods gone for 10 minutes are ignored
//! and removed.

use std::time::Duration;

use fleet_breaker::breaker::config_fingerprint;
use fleet_breaker::{BreakerConfig, CircuitBreaker, RedisStore};
use redis::AsyncCommands;

use crate::support::{TestRedis, unique_prefix, wait_for};

async fn pod(redis: &TestRedis, prefix: &str, name: &str, config: BreakerConfig) -> CircuitBreaker {
    let store = RedisStore::builder(redis.url())
        .prefix(prefix)
        .build()
        .await
        .expect("store");
    CircuitBreaker::builder()
        .store(store)
        .config(config)
        .instance_id(name)
        .build()
        .expect("breaker")
}

/// Waits (bounded) for `name`'s entry in `key`.
async fn published(conn: &redis::aio::MultiplexedConnection, key: &str, name: &str) -> String {
    wait_for(
        &format!("{name} publishes at start"),
        Duration::from_secs(5),
        || {
            let mut conn = conn.clone();
            async move {
                conn.hget::<_, _, Option<String>>(key, name)
                    .await
                    .ok()
                    .flatten()
            }
        },
    )
    .await
}

fn rated() -> BreakerConfig {
    BreakerConfig::builder()
        .failure_rate_threshold(Some(0.5))
        .build()
        .expect("valid")
}

#[tokio::test]
async fn two_pods_with_different_configs_each_name_the_other_and_agree_after_a_restart() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("fleet_config");
    let key = format!("{prefix}:configs");
    let mut conn = redis.connection().await;

    let a = pod(&redis, &prefix, "pod-a", BreakerConfig::default()).await;
    let b = pod(&redis, &prefix, "pod-b", rated()).await;
    // Published at start, by the breaker's own check.
    for name in ["pod-a", "pod-b"] {
        published(&conn, &key, name).await;
    }
    let entry: String = conn.hget(&key, "pod-b").await.unwrap();
    assert!(
        entry.starts_with(&format!("{} ", config_fingerprint(&rated()))),
        "{entry}"
    );

    let seen_by_a = a.check_config_agreement().await.unwrap();
    assert!(seen_by_a.compared);
    assert_eq!(
        seen_by_a.differing.get("pod-b"),
        Some(&config_fingerprint(&rated())),
        "{seen_by_a:?}"
    );
    let seen_by_b = b.check_config_agreement().await.unwrap();
    assert_eq!(
        seen_by_b.differing.get("pod-a"),
        Some(&config_fingerprint(&BreakerConfig::default())),
        "{seen_by_b:?}"
    );

    drop(b);
    let b = pod(&redis, &prefix, "pod-b", BreakerConfig::default()).await;
    b.check_config_agreement().await.unwrap();
    let seen_by_a = a.check_config_agreement().await.unwrap();
    assert!(!seen_by_a.is_mismatch(), "{seen_by_a:?}");
}

#[tokio::test]
async fn an_entry_older_than_ten_minutes_or_unreadable_is_ignored_and_removed() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("fleet_config_stale");
    let key = format!("{prefix}:configs");
    let mut conn = redis.connection().await;
    let other = config_fingerprint(&rated());
    let _: () = conn
        .hset(&key, "pod-gone", format!("{other} 1000"))
        .await
        .unwrap();
    let _: () = conn
        .hset(&key, "pod-junk", "not a fingerprint")
        .await
        .unwrap();

    let a = pod(&redis, &prefix, "pod-a", BreakerConfig::default()).await;
    let agreement = a.check_config_agreement().await.unwrap();
    assert!(agreement.compared);
    assert!(!agreement.is_mismatch(), "{agreement:?}");
    let gone: bool = conn.hexists(&key, "pod-gone").await.unwrap();
    let junk: bool = conn.hexists(&key, "pod-junk").await.unwrap();
    assert!(!gone && !junk, "removed by the pod that found them");
    let mine: bool = conn.hexists(&key, "pod-a").await.unwrap();
    assert!(mine);
}

#[tokio::test]
async fn a_breaker_built_with_config_check_off_publishes_nothing() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("fleet_config_off");
    let key = format!("{prefix}:configs");
    let store = RedisStore::builder(redis.url())
        .prefix(&prefix)
        .build()
        .await
        .expect("store");
    let tool = CircuitBreaker::builder()
        .store(store)
        .config(rated())
        .instance_id("status-tool")
        .config_check(false)
        .build()
        .expect("breaker");
    // A pod built after the tool has published: the tool, which would
    // have done so first, did not.
    let _pod = pod(&redis, &prefix, "pod-a", BreakerConfig::default()).await;
    let conn = redis.connection().await;
    published(&conn, &key, "pod-a").await;
    let mut conn = conn.clone();
    let tools: bool = conn.hexists(&key, "status-tool").await.unwrap();
    assert!(!tools, "a tool's config is not a pod's");
    assert!(!tool.config_agreement().compared);
}
