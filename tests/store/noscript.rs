//! `SCRIPT FLUSH`, `FUNCTION FLUSH` and a Redis restart between calls are
//! invisible to callers, and a Redis without functions (before Redis 7) runs
//! the same operations by `EVALSHA`.

use std::time::Duration;

use fleet_breaker::{AgentId, CircuitBreaker, CircuitState, RedisStore, StorePolicy};

use crate::support::{TestRedis, unique_prefix};

async fn breaker(redis: &TestRedis, prefix: &str) -> CircuitBreaker {
    let store = RedisStore::builder(redis.url())
        .prefix(prefix)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("connect");
    // Fail closed, so that any store error would show as a rejection.
    CircuitBreaker::builder()
        .store(store)
        .policy(StorePolicy::FailClosed)
        .build()
        .expect("valid breaker")
}

/// Empties Redis's script cache and its function libraries.
async fn flush(redis: &TestRedis) {
    redis.script_flush().await;
    redis.function_flush().await;
}

#[tokio::test]
async fn script_and_function_flush_between_calls_is_invisible() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("noscript-flush");
    let breaker = breaker(&redis, &prefix).await;
    let agent = AgentId::new("agent-1").unwrap();
    if redis.is_owned() {
        redis.reset_stats().await;
    }

    let permit = breaker.acquire(&agent).await.expect("admitted");
    flush(&redis).await;
    permit.failure("boom").await;
    flush(&redis).await;
    let permit = breaker
        .acquire(&agent)
        .await
        .expect("admitted after the flush");
    assert!(
        !permit.is_degraded(),
        "decided by Redis, not by the fallback"
    );
    permit.success().await;
    flush(&redis).await;

    let metrics = breaker
        .metrics(&agent)
        .await
        .expect("metrics after SCRIPT FLUSH");
    assert_eq!(metrics.metrics.success_count, 1);
    assert!(
        metrics.metrics.last_failure_time.is_some(),
        "the failure was recorded"
    );
    if redis.is_owned() {
        // Each call after a flush found no library, loaded it, and ran.
        let stats = redis.command_stats().await;
        let loads = stats.get("function|load").copied().unwrap_or(0);
        assert!(loads >= 3, "loaded again after each flush: {stats:?}");
    }
}

#[tokio::test]
async fn redis_restart_between_calls_is_invisible() {
    let mut redis = TestRedis::start().await;
    if !redis.is_owned() {
        eprintln!("skipped: REDIS_URL is not a server this test may restart");
        return;
    }
    let prefix = unique_prefix("noscript-restart");
    let breaker = breaker(&redis, &prefix).await;
    let agent = AgentId::new("agent-1").unwrap();
    breaker
        .acquire(&agent)
        .await
        .expect("admitted")
        .success()
        .await;

    redis.kill();
    redis.restart().await;

    // Empty data, no scripts, stale pooled connections: none of it shows.
    let permit = breaker
        .acquire(&agent)
        .await
        .expect("admitted after restart");
    assert!(!permit.is_degraded());
    permit.failure("down").await;
    let snapshot = breaker
        .snapshot(&agent)
        .await
        .expect("state recreated on first use");
    assert_eq!(snapshot.state, CircuitState::Closed);
    assert_eq!(snapshot.failure_count, 1);
    assert_eq!(
        breaker.agents().await.unwrap(),
        vec![agent],
        "agent registered again"
    );
}

#[tokio::test]
async fn a_redis_without_functions_runs_every_operation_by_evalsha() {
    // As before Redis 7: `FCALL` and `FUNCTION` are unknown commands.
    let Some(redis) = TestRedis::start_with_args(&[
        "--rename-command",
        "FCALL",
        "",
        "--rename-command",
        "FUNCTION",
        "",
    ])
    .await
    else {
        return;
    };
    let prefix = unique_prefix("no-functions");
    let breaker = breaker(&redis, &prefix).await;
    let agent = AgentId::new("agent-1").unwrap();
    redis.reset_stats().await;
    for _ in 0..2 {
        let permit = breaker.acquire(&agent).await.expect("admitted by Redis");
        assert!(
            !permit.is_degraded(),
            "decided by Redis, not by the fallback"
        );
        permit.failure("boom").await;
    }
    redis.script_flush().await;
    let snapshot = breaker
        .snapshot(&agent)
        .await
        .expect("a snapshot after SCRIPT FLUSH");
    assert_eq!(snapshot.failure_count, 2);
    let stats = redis.command_stats().await;
    let scripts = stats.get("evalsha").copied().unwrap_or(0);
    assert!(scripts >= 5, "every operation by EVALSHA: {stats:?}");
    assert_eq!(stats.get("fcall"), None, "{stats:?}");
}
