//! Bad input gets a clear error, quickly, and never a panic or a hang.

use std::time::{Duration, Instant};

use fleet_breaker::{
    AgentId, BreakerConfig, BreakerError, CircuitBreaker, ForceMode, RedisStore, StoreError,
};
use redis::AsyncCommands;

use crate::support::{TestRedis, unique_prefix};
use fleet_breaker::store::StoreExt;

#[test]
fn invalid_agent_ids_are_refused_before_any_key_is_built() {
    for bad in [
        "",
        "{agent}",
        "a b",
        "agent*",
        "a\u{0}b",
        "agent\n",
        "ägent",
        &"x".repeat(129),
    ] {
        let error = AgentId::new(bad).expect_err(bad);
        assert!(error.to_string().contains("1 to 128 bytes"), "{error}");
    }
}

#[test]
fn an_invalid_config_is_refused_by_the_breaker_builder() {
    let config = BreakerConfig {
        failure_threshold: 0,
        ..BreakerConfig::default()
    };
    let error = CircuitBreaker::builder()
        .config(config)
        .build()
        .expect_err("threshold 0");
    assert_eq!(error.field, "failure_threshold");
    assert!(error.to_string().contains("at least 1"), "{error}");
}

#[tokio::test]
async fn a_malformed_url_is_an_invalid_settings_error() {
    let error = RedisStore::builder("http://not-redis")
        .build()
        .await
        .expect_err("not a redis url");
    assert!(matches!(error, StoreError::InvalidSettings(_)), "{error:?}");
}

#[tokio::test]
async fn a_refused_connection_fails_within_the_timeout() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }; // closed again: nothing listens there
    let started = Instant::now();
    let error = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
        .timeout(Duration::from_millis(200))
        .build()
        .await
        .expect_err("nothing listens");
    assert!(error.is_store_unavailable(), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_server_that_never_answers_fails_within_the_timeout() {
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let error = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
        .timeout(Duration::from_millis(150))
        .build()
        .await
        .expect_err("no answer");
    let elapsed = started.elapsed();
    assert!(error.is_store_unavailable(), "{error:?}");
    assert!(
        error.to_string().contains("150ms"),
        "the message names the timeout: {error}"
    );
    assert!(elapsed < Duration::from_millis(800), "took {elapsed:?}");
    silent.abort();
}

#[tokio::test]
async fn a_corrupt_hash_is_reported_and_leaves_other_agents_alone() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("bad-hash");
    let store = RedisStore::builder(redis.url())
        .prefix(&prefix)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    // No local cache: every acquire asks the store, which is what fails here.
    let breaker = CircuitBreaker::builder()
        .store(store)
        .local_cache(false)
        .build()
        .unwrap();
    let good = AgentId::new("good").unwrap();
    let bad = AgentId::new("bad").unwrap();
    breaker.acquire(&good).await.unwrap().failure("x").await;
    breaker.acquire(&bad).await.unwrap().success().await;

    let mut conn = redis.connection().await;
    let _: () = conn
        .hset(format!("{prefix}:{{bad}}:state"), "failure_count", "banana")
        .await
        .unwrap();
    let before: std::collections::HashMap<String, String> = conn
        .hgetall(format!("{prefix}:{{bad}}:state"))
        .await
        .unwrap();

    let error = breaker.metrics(&bad).await.expect_err("corrupt field");
    assert!(
        matches!(error, BreakerError::Store(StoreError::Corrupt { .. })),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("failure_count"),
        "names the field: {error}"
    );
    // A failed script wrote nothing.
    let ticket = fleet_breaker::model::Ticket {
        permit_id: String::new(),
        generation: 0,
    };
    let record = breaker
        .store()
        .record(
            breaker.config(),
            &bad,
            &ticket,
            fleet_breaker::Outcome::Failure,
        )
        .await;
    assert!(record.is_err(), "{record:?}");
    let after: std::collections::HashMap<String, String> = conn
        .hgetall(format!("{prefix}:{{bad}}:state"))
        .await
        .unwrap();
    assert_eq!(before, after);
    // The other agent is untouched and works.
    assert_eq!(
        breaker.metrics(&good).await.unwrap().metrics.failure_count,
        1
    );
    // Acquire on the corrupt agent falls back (FailLocal) instead of failing the call.
    let permit = breaker.acquire(&bad).await.expect("fallback admits");
    assert!(permit.is_degraded());
}

#[tokio::test]
async fn admin_actions_on_an_unknown_agent_create_nothing() {
    let breaker = CircuitBreaker::in_memory();
    let ghost = AgentId::new("ghost").unwrap();
    assert!(breaker.reset(&ghost).await.unwrap_err().is_unknown_agent());
    assert!(
        breaker
            .force(&ghost, ForceMode::Open, None)
            .await
            .unwrap_err()
            .is_unknown_agent()
    );
    assert!(
        breaker
            .metrics(&ghost)
            .await
            .unwrap_err()
            .is_unknown_agent()
    );
    assert!(breaker.agents().await.unwrap().is_empty());
    let zero_ttl = breaker
        .force(&ghost, ForceMode::Open, Some(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(zero_ttl.is_invalid_input(), "{zero_ttl}");
}
