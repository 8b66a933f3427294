//! The contents of each kind of transition: the message every pod receives.

use super::*;
use CircuitState::{Closed, ForcedClosed, ForcedOpen, HalfOpen, Open};
use TransitionReason as R;

fn transition(
    (from, to): (CircuitState, CircuitState),
    generation: u64,
    at_ms: u64,
    reason: TransitionReason,
    backoff_seconds: f64,
    open_until_ms: u64,
) -> Transition {
    Transition {
        agent_id: agent_id(),
        from,
        to,
        generation,
        at_ms,
        reason,
        backoff_seconds,
        open_until_ms,
        epoch: 0,
    }
}

#[test]
fn failure_threshold_transition_carries_the_new_backoff_and_open_until() {
    let mut c = Circuit::new();
    let t = c.trip(T0);
    assert_eq!(
        t,
        transition((Closed, Open), 1, T0, R::FailureThreshold, 1.5, T0 + 1_500)
    );
}

#[test]
fn backoff_elapsed_transition_is_stamped_at_the_acquire_that_made_it() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (step, _) = c.acquire(T0 + 1_700);
    let t = step.transition.expect("half-open");
    let opened_until = c.s.open_until_ms;
    assert_eq!(
        t,
        transition(
            (Open, HalfOpen),
            2,
            T0 + 1_700,
            R::BackoffElapsed,
            1.5,
            opened_until
        )
    );
}

#[test]
fn half_open_keeps_the_end_of_the_last_backoff_as_open_until() {
    let mut c = Circuit::new();
    c.trip(T0);
    let opened_until = c.s.open_until_ms;
    let (step, _) = c.acquire(T0 + 1_700);
    assert_eq!(step.transition.map(|t| t.open_until_ms), Some(opened_until));
    assert_eq!(c.s.open_until_ms, opened_until);
}

#[test]
fn probe_failed_transition_carries_the_escalated_backoff() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, probe) = c.half_open();
    let t = c.record(at + 9, &probe, Outcome::Failure);
    assert_eq!(
        t,
        Some(transition(
            (HalfOpen, Open),
            3,
            at + 9,
            R::ProbeFailed,
            2.25,
            at + 9 + 2_250
        ))
    );
}

#[test]
fn probes_succeeded_transition_carries_base_backoff_and_no_open_until() {
    let config = BreakerConfig::builder()
        .half_open_max_calls(1)
        .build()
        .expect("valid config");
    let mut c = Circuit::with_config(config);
    c.trip(T0);
    let (at, probe) = c.half_open();
    let t = c.record(at + 9, &probe, Outcome::Success);
    assert_eq!(
        t,
        Some(transition(
            (HalfOpen, Closed),
            3,
            at + 9,
            R::ProbesSucceeded,
            1.0,
            0
        ))
    );
}

#[test]
fn reset_transition_carries_base_backoff_and_no_open_until() {
    let mut c = Circuit::new();
    c.trip(T0);
    let t = c.reset(T0 + 5);
    assert_eq!(t, transition((Open, Closed), 2, T0 + 5, R::Reset, 1.0, 0));
}

#[test]
fn forced_open_transition_carries_the_expiry_as_open_until() {
    let mut c = Circuit::new();
    c.trip(T0);
    let t = c.force(T0 + 5, ForceMode::Open, Some(20_000));
    assert_eq!(
        t,
        transition((Open, ForcedOpen), 2, T0 + 5, R::Forced, 1.5, T0 + 20_005)
    );
    assert_eq!(c.s.forced_until_ms, Some(T0 + 20_005));
}

#[test]
fn forced_open_without_ttl_transition_carries_no_open_until() {
    let mut c = Circuit::new();
    let t = c.force(T0, ForceMode::Open, None);
    assert_eq!(
        t,
        transition((Closed, ForcedOpen), 1, T0, R::Forced, 1.0, 0)
    );
    assert_eq!(c.s.forced_until_ms, None);
}

#[test]
fn forced_closed_transition_carries_no_open_until() {
    let mut c = Circuit::new();
    c.trip(T0);
    let t = c.force(T0 + 5, ForceMode::Closed, Some(20_000));
    assert_eq!(
        t,
        transition((Open, ForcedClosed), 2, T0 + 5, R::Forced, 1.5, 0)
    );
    assert_eq!(c.s.forced_until_ms, Some(T0 + 20_005));
}

#[test]
fn force_cleared_transition_carries_base_backoff() {
    let mut c = Circuit::new();
    c.trip(T0);
    c.force(T0 + 5, ForceMode::Open, None);
    let t = c.force(T0 + 6, ForceMode::Auto, None);
    assert_eq!(
        t,
        transition((ForcedOpen, Closed), 3, T0 + 6, R::ForceCleared, 1.0, 0)
    );
}

#[test]
fn force_expired_transition_is_stamped_at_the_operation_that_noticed_it() {
    let mut c = Circuit::new();
    c.trip(T0);
    c.force(T0 + 5, ForceMode::Open, Some(1_000));
    let t = c.refresh(T0 + 4_000);
    assert_eq!(
        t,
        Some(transition(
            (ForcedOpen, Closed),
            3,
            T0 + 4_000,
            R::ForceExpired,
            1.0,
            0
        ))
    );
}
