//! Panic mode: off by default; on, one call to the agent that reopens soonest.

use std::time::Duration;

use fleet_breaker::router::{Attempt, FailoverRouter};
use fleet_breaker::{CircuitBreaker, ForceMode, ManualClock};

use crate::common::{Agents, Behave, breaker, id, trip};

/// agent-1 opened at t0, agent-2 one second later: agent-1 reopens first
/// (0.5 s to go against 1.5 s).
async fn two_open_circuits() -> (CircuitBreaker, ManualClock) {
    let (breaker, clock) = breaker(1);
    trip(&breaker, "agent-1").await;
    clock.advance(Duration::from_secs(1));
    trip(&breaker, "agent-2").await;
    (breaker, clock)
}

#[tokio::test]
async fn panic_mode_is_off_by_default_and_an_all_rejected_list_fails_without_a_call() {
    let (breaker, _clock) = two_open_circuits().await;
    let router = FailoverRouter::new(breaker);
    assert!(!router.panic_mode());
    let agents = Agents::default();

    let error = router
        .route_task("t", ["agent-2", "agent-1"], agents.task_fn(), 1)
        .await
        .expect_err("every circuit is open");

    let failed = error.all_agents_failed().expect("AllAgentsFailed");
    assert!(failed.all_rejected());
    assert_eq!(failed.calls, 0);
    assert!(!failed.panic_mode);
    assert!(agents.calls().is_empty());
    assert!(error.to_string().contains("(0 calls)"), "{error}");
}

#[tokio::test]
async fn panic_mode_calls_the_agent_whose_circuit_reopens_soonest_once() {
    let (breaker, _clock) = two_open_circuits().await;
    let before = breaker.snapshot(&id("agent-1")).await.unwrap();
    let router = FailoverRouter::builder(breaker.clone())
        .panic_mode(true)
        .build()
        .unwrap();
    let agents = Agents::default();

    let routed = router
        .route_task("t", ["agent-2", "agent-1"], agents.task_fn(), 1)
        .await
        .expect("panic mode serves from agent-1");

    assert_eq!(agents.calls(), ["agent-1"]);
    assert_eq!(routed.agent, id("agent-1"));
    assert!(routed.panic_mode);
    assert_eq!(routed.attempts, 1);
    assert_eq!(routed.history.len(), 1);
    assert!(matches!(
        routed.history[0].attempt,
        Attempt::Rejected { .. }
    ));
    // The panic call held no permit: the circuit is left to its own recovery.
    let after = breaker.snapshot(&id("agent-1")).await.unwrap();
    assert_eq!(
        (after.state, after.generation),
        (before.state, before.generation)
    );
    assert_eq!(after.success_count, before.success_count);
}

#[tokio::test]
async fn a_failed_panic_call_is_reported_and_not_repeated() {
    let (breaker, _clock) = two_open_circuits().await;
    let router = FailoverRouter::builder(breaker)
        .panic_mode(true)
        .build()
        .unwrap();
    let agents = Agents::new(&[("agent-1", Behave::Fail("still down"))]);

    let error = router
        .route_task("t", ["agent-2", "agent-1"], agents.task_fn(), 1)
        .await
        .expect_err("the panic call fails");

    assert_eq!(agents.calls(), ["agent-1"]);
    let failed = error.all_agents_failed().unwrap();
    assert!(failed.panic_mode);
    assert_eq!(failed.calls, 1);
    assert_eq!(
        failed.attempt("agent-1"),
        Some(&Attempt::Failed {
            reason: "still down".into()
        })
    );
    assert!(matches!(
        failed.attempt("agent-2"),
        Some(Attempt::Rejected { .. })
    ));
    assert!(
        error.to_string().contains("(1 call, panic mode)"),
        "{error}"
    );
    assert_eq!(router.recent_failures(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn panic_mode_never_overrides_an_operator_forcing_a_circuit_open() {
    let (breaker, _clock) = breaker(5);
    for agent in ["agent-1", "agent-2"] {
        breaker.acquire(&id(agent)).await.unwrap().success().await;
        breaker
            .force(&id(agent), ForceMode::Open, None)
            .await
            .unwrap();
    }
    let router = FailoverRouter::builder(breaker)
        .panic_mode(true)
        .build()
        .unwrap();
    let agents = Agents::default();

    let error = router
        .route_task("t", ["agent-1", "agent-2"], agents.task_fn(), 1)
        .await
        .expect_err("forced open stays closed to traffic");

    assert!(agents.calls().is_empty());
    assert!(!error.all_agents_failed().unwrap().panic_mode);
}

#[tokio::test]
async fn panic_mode_stays_out_of_the_way_while_any_agent_is_admitted() {
    let (breaker, _clock) = two_open_circuits().await;
    let router = FailoverRouter::builder(breaker)
        .panic_mode(true)
        .build()
        .unwrap();
    let agents = Agents::default();

    let routed = router
        .route_task("t", ["agent-1", "agent-2", "agent-3"], agents.task_fn(), 1)
        .await
        .unwrap();

    assert_eq!(agents.calls(), ["agent-3"]);
    assert!(!routed.panic_mode);
}
