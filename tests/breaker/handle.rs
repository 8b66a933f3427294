//! Permits, `call`, cancellation and the metrics shape, on the embedded store.

use std::sync::Arc;
use std::time::Duration;

use fleet_breaker::{
    AgentId, BreakerConfig, CallError, CircuitBreaker, CircuitState, ForceMode, ManualClock,
    MemoryStore, RejectCause,
};

fn breaker_with_clock() -> (CircuitBreaker, ManualClock) {
    let clock = ManualClock::default();
    let breaker = CircuitBreaker::builder()
        .store(MemoryStore::with_clock(Arc::new(clock.clone())))
        .config(BreakerConfig::default())
        .build()
        .unwrap();
    (breaker, clock)
}

async fn open(breaker: &CircuitBreaker, agent: &AgentId) {
    for _ in 0..5 {
        breaker.acquire(agent).await.unwrap().failure("down").await;
    }
}

#[tokio::test]
async fn call_keeps_the_inner_error_apart_from_a_rejection() {
    let (breaker, _clock) = breaker_with_clock();
    let agent = AgentId::new("agent-1").unwrap();
    for _ in 0..5 {
        let result = breaker
            .call(&agent, async { Err::<(), _>("refused") })
            .await;
        assert_eq!(result, Err(CallError::Inner("refused")));
    }
    let polled = std::sync::atomic::AtomicBool::new(false);
    let result = breaker
        .call(&agent, async {
            polled.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, &str>(())
        })
        .await;
    let Err(CallError::Rejected(rejected)) = result else {
        panic!("expected a rejection, got {result:?}")
    };
    assert!(
        !polled.load(std::sync::atomic::Ordering::SeqCst),
        "a rejected call is never polled"
    );
    assert_eq!(rejected.state, CircuitState::Open);
    assert_eq!(rejected.cause, RejectCause::Circuit);
    assert_eq!(rejected.retry_after, Some(Duration::from_millis(1500)));
    assert_eq!(
        rejected.to_string(),
        "agent-1 rejected: circuit open, retry after 1.500s"
    );
}

#[tokio::test]
async fn a_dropped_probe_permit_is_handed_back() {
    let (breaker, clock) = breaker_with_clock();
    let agent = AgentId::new("agent-1").unwrap();
    open(&breaker, &agent).await;
    clock.advance(Duration::from_millis(1500));
    let probes: Vec<_> = [
        breaker.acquire(&agent).await.unwrap(),
        breaker.acquire(&agent).await.unwrap(),
        breaker.acquire(&agent).await.unwrap(),
    ]
    .into();
    assert!(probes.iter().all(|p| p.is_probe()));
    assert!(
        breaker.acquire(&agent).await.is_err(),
        "all three probes are out"
    );
    drop(probes);
    crate::support::wait_until(
        "dropped probes are released",
        Duration::from_secs(2),
        || {
            let breaker = breaker.clone();
            let agent = agent.clone();
            async move { breaker.snapshot(&agent).await.unwrap().probes.is_empty() }
        },
    )
    .await;
    let snapshot = breaker.snapshot(&agent).await.unwrap();
    assert_eq!(snapshot.state, CircuitState::HalfOpen);
    assert_eq!(
        snapshot.half_open_successes, 0,
        "a neutral outcome counts nothing"
    );
    assert!(breaker.acquire(&agent).await.unwrap().is_probe());
}

#[tokio::test]
async fn a_cancelled_call_counts_as_neutral() {
    let (breaker, clock) = breaker_with_clock();
    let agent = AgentId::new("agent-1").unwrap();
    open(&breaker, &agent).await;
    clock.advance(Duration::from_millis(1500));
    let call = breaker.call(&agent, std::future::pending::<Result<(), &str>>());
    assert!(
        tokio::time::timeout(Duration::from_millis(20), call)
            .await
            .is_err(),
        "still pending"
    );
    crate::support::wait_until(
        "the cancelled probe is released",
        Duration::from_secs(2),
        || {
            let breaker = breaker.clone();
            let agent = agent.clone();
            async move { breaker.snapshot(&agent).await.unwrap().probes.is_empty() }
        },
    )
    .await;
    let snapshot = breaker.snapshot(&agent).await.unwrap();
    assert_eq!(
        (snapshot.failure_count, snapshot.half_open_successes),
        (5, 0)
    );
}

#[tokio::test]
async fn metrics_have_the_original_json_shape() {
    let (breaker, _clock) = breaker_with_clock();
    let agent = AgentId::new("agent-1").unwrap();
    breaker.acquire(&agent).await.unwrap().success().await;
    let json = serde_json::to_value(breaker.metrics(&agent).await.unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "agent_id": "agent-1",
            "state": "closed",
            "metrics": {
                "failure_count": 0,
                "success_count": 1,
                "total_rejections": 0,
                "last_failure_time": null,
                "last_success_time": "2023-11-14T22:13:20.000Z"
            },
            "backoff_seconds": 1.0,
            "generation": 0,
            "retry_after_seconds": null
        })
    );
}

#[tokio::test]
async fn force_and_reset_are_transitions_and_expire() {
    let (breaker, clock) = breaker_with_clock();
    let agent = AgentId::new("agent-1").unwrap();
    breaker.acquire(&agent).await.unwrap().success().await;

    let forced = breaker
        .force(&agent, ForceMode::Open, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(
        (forced.to, forced.generation),
        (CircuitState::ForcedOpen, 1)
    );
    let rejected = breaker.acquire(&agent).await.unwrap_err();
    assert_eq!(rejected.retry_after, Some(Duration::from_secs(10)));

    clock.advance(Duration::from_secs(10));
    let permit = breaker.acquire(&agent).await.expect("the force expired");
    assert_eq!(permit.generation(), 2);
    permit.success().await;

    let reset = breaker.reset(&agent).await.unwrap();
    assert_eq!((reset.to, reset.generation), (CircuitState::Closed, 3));
    let metrics = breaker.metrics(&agent).await.unwrap();
    assert_eq!(
        (
            metrics.metrics.success_count,
            metrics.metrics.total_rejections
        ),
        (0, 0)
    );
    assert_eq!(breaker.agents().await.unwrap(), vec![agent]);
}
