//! Per-attempt timeouts and cancellation, on tokio's paused clock.

use std::time::Duration;

use fleet_breaker::router::{Attempt, FailoverRouter};
use fleet_breaker::{BreakerConfig, CircuitState};
use tokio::time::Instant;

use crate::common::{Agents, Behave, breaker, breaker_with, id, trip};

#[tokio::test(start_paused = true)]
async fn a_call_past_the_attempt_timeout_is_a_failure_and_the_next_agent_serves() {
    let (breaker, _clock) = breaker(5);
    let router = FailoverRouter::builder(breaker.clone())
        .attempt_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let agents = Agents::new(&[("agent-1", Behave::Hang)]);
    let started = Instant::now();

    let routed = router
        .route_task("t", ["agent-1", "agent-2"], agents.task_fn(), 1)
        .await
        .unwrap();

    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "gave up on agent-1 at the timeout"
    );
    assert_eq!(routed.agent, id("agent-2"));
    assert_eq!(
        routed.history[0].attempt,
        Attempt::TimedOut {
            after: Duration::from_secs(2)
        }
    );
    let metrics = breaker.metrics(&id("agent-1")).await.unwrap();
    assert_eq!(metrics.metrics.failure_count, 1);
    let journal = router.recent_failures(1).await.unwrap();
    assert_eq!(journal[0].reason, "timed out after 2s");
}

#[tokio::test(start_paused = true)]
async fn without_a_timeout_the_router_waits_as_long_as_the_call_takes() {
    let (breaker, _clock) = breaker(5);
    let router = FailoverRouter::new(breaker);
    let agents = Agents::new(&[("agent-1", Behave::Slow(Duration::from_secs(3600)))]);
    let started = Instant::now();

    let routed = router
        .route_task("t", ["agent-1", "agent-2"], agents.task_fn(), 1)
        .await
        .unwrap();

    assert_eq!(routed.agent, id("agent-1"));
    assert_eq!(started.elapsed(), Duration::from_secs(3600));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_route_charges_nothing_on_a_closed_circuit() {
    let (breaker, _clock) = breaker(5);
    let router = FailoverRouter::new(breaker.clone());
    let agents = Agents::new(&[("agent-1", Behave::Hang)]);

    let cancelled = tokio::time::timeout(
        Duration::from_secs(1),
        router.route_task("t", ["agent-1", "agent-2"], agents.task_fn(), 1),
    )
    .await;

    assert!(cancelled.is_err(), "the route was still waiting on agent-1");
    let snapshot = breaker.snapshot(&id("agent-1")).await.unwrap();
    assert_eq!((snapshot.failure_count, snapshot.success_count), (0, 0));
    assert!(router.recent_failures(10).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_route_hands_a_half_open_probe_back() {
    let (breaker, clock) = breaker_with(
        BreakerConfig::builder()
            .failure_threshold(1)
            .half_open_max_calls(1),
    );
    trip(&breaker, "agent-1").await;
    clock.advance(Duration::from_millis(1500)); // the backoff elapses
    let router = FailoverRouter::new(breaker.clone());
    let agents = Agents::new(&[("agent-1", Behave::Hang)]);

    let cancelled = tokio::time::timeout(
        Duration::from_secs(1),
        router.route_task("t", ["agent-1"], agents.task_fn(), 1),
    )
    .await;
    assert!(cancelled.is_err());
    assert_eq!(agents.calls(), ["agent-1"], "the probe call was made");

    // The dropped permit is settled neutral on a spawned task: wait for it, bounded.
    let agent = id("agent-1");
    let mut released = false;
    for _ in 0..100 {
        let snapshot = breaker.snapshot(&agent).await.unwrap();
        if snapshot.probes.is_empty() {
            assert_eq!(snapshot.state, CircuitState::HalfOpen);
            assert_eq!(
                snapshot.failure_count, 1,
                "nothing was added by the cancelled call"
            );
            assert_eq!(snapshot.half_open_successes, 0);
            released = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(released, "the probe lease was handed back");
    let probe = breaker
        .acquire(&agent)
        .await
        .expect("the only probe permit is free again");
    assert!(probe.is_probe());
    probe.neutral().await;
}
