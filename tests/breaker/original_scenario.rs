//! The original specification's "Agent-1 fails" timeline, step by step, on
//! the embedded store and on Redis (time driven by the test-only override).

use std::sync::Arc;
use std::time::Duration;

use fleet_breaker::store::BreakerStore;
use fleet_breaker::{
    AgentId, CallError, CircuitBreaker, CircuitState, ManualClock, MemoryStore, RedisStore,
};

use crate::support::{TestRedis, unique_prefix};

async fn replay(store: impl BreakerStore + 'static, clock: &ManualClock) {
    let breaker = CircuitBreaker::builder().store(store).build().unwrap();
    let agent = AgentId::new("agent-1").unwrap();
    let second = Duration::from_secs(1);

    // Time 0s..4s: five failures; the fifth opens the circuit for 1.5 s.
    for n in 1..=5u64 {
        let result = breaker.call(&agent, async { Err::<(), _>("down") }).await;
        assert!(matches!(result, Err(CallError::Inner("down"))));
        let snapshot = breaker.snapshot(&agent).await.unwrap();
        if n < 5 {
            assert_eq!(
                (snapshot.state, snapshot.failure_count),
                (CircuitState::Closed, n)
            );
            clock.advance(second);
        } else {
            assert_eq!(snapshot.state, CircuitState::Open);
            assert_eq!(snapshot.backoff_ms, 1500);
        }
    }
    // Rejected at once while open.
    clock.advance(Duration::from_millis(500));
    let rejected = breaker.acquire(&agent).await.unwrap_err();
    assert_eq!(rejected.retry_after, Some(Duration::from_millis(1000)));
    clock.advance(Duration::from_millis(999));
    assert!(breaker.acquire(&agent).await.is_err());

    // 1.5 s after the opening: three probe calls succeed and close it.
    clock.advance(Duration::from_millis(1));
    for n in 1..=3u32 {
        let permit = breaker.acquire(&agent).await.expect("probe granted");
        assert!(permit.is_probe());
        permit.success().await;
        let snapshot = breaker.snapshot(&agent).await.unwrap();
        if n < 3 {
            assert_eq!(
                (snapshot.state, snapshot.half_open_successes),
                (CircuitState::HalfOpen, n)
            );
        } else {
            assert_eq!(snapshot.state, CircuitState::Closed);
            assert_eq!(snapshot.backoff_ms, 1000, "backoff back to base");
        }
        clock.advance(second);
    }
    // A pod with a local cache may have rejected locally: counters reach the
    // store at the next flush.
    breaker.flush().await.unwrap();
    let metrics = breaker.metrics(&agent).await.unwrap();
    assert_eq!(metrics.metrics.total_rejections, 2);
    assert_eq!(metrics.metrics.failure_count, 0);
    assert_eq!(metrics.metrics.success_count, 3);
    assert!(!breaker.acquire(&agent).await.unwrap().is_probe());
}

#[tokio::test]
async fn the_original_timeline_on_the_embedded_store() {
    let clock = ManualClock::default();
    replay(MemoryStore::with_clock(Arc::new(clock.clone())), &clock).await;
}

#[tokio::test]
async fn the_original_timeline_on_redis() {
    let redis = TestRedis::start().await;
    let clock = ManualClock::default();
    let store = RedisStore::builder(redis.url())
        .prefix(unique_prefix("original-timeline"))
        .timeout(Duration::from_secs(2))
        .clock_override(Arc::new(clock.clone()))
        .build()
        .await
        .unwrap();
    replay(store, &clock).await;
}
