//! Closed: admit, count consecutive failures, open at the threshold.

use super::*;

#[test]
fn fresh_circuit_is_closed_with_zero_counters_and_base_backoff() {
    let c = Circuit::new();
    assert_eq!(
        c.s,
        Snapshot {
            state: CircuitState::Closed,
            failure_count: 0,
            success_count: 0,
            total_rejections: 0,
            last_failure_ms: None,
            last_success_ms: None,
            backoff_ms: 1_000,
            open_until_ms: 0,
            half_open_successes: 0,
            generation: 0,
            forced_until_ms: None,
            probes: Vec::new(),
            epoch: 0,
            window: Window::default(),
            settings: AgentSettings::default(),
        }
    );
}

#[test]
fn closed_circuit_admits_with_a_plain_permit_and_changes_nothing() {
    let mut c = Circuit::new();
    c.call(T0, Outcome::Failure);
    let before = c.s.clone();

    let (step, _) = c.acquire(T0 + 1);

    assert_eq!(
        step,
        AcquireStep {
            decision: Decision::Granted(Grant {
                generation: 0,
                probe: false,
            }),
            transition: None,
        }
    );
    assert_eq!(c.s, before);
}

#[test]
fn failure_in_closed_counts_clears_success_count_and_stamps_last_failure() {
    let mut c = Circuit::new();
    c.call(T0, Outcome::Success);
    c.call(T0 + 1, Outcome::Success);

    assert_eq!(c.call(T0 + 2, Outcome::Failure), None);

    assert_eq!(c.s.state, CircuitState::Closed);
    assert_eq!(c.s.failure_count, 1);
    assert_eq!(c.s.success_count, 0);
    assert_eq!(c.s.last_failure_ms, Some(T0 + 2));
    assert_eq!(c.s.last_success_ms, Some(T0 + 1));
}

#[test]
fn success_in_closed_resets_failure_count_and_increments_success_count() {
    let mut c = Circuit::new();
    for i in 0..4 {
        c.call(T0 + i, Outcome::Failure);
    }
    assert_eq!(c.s.failure_count, 4);

    assert_eq!(c.call(T0 + 10, Outcome::Success), None);
    assert_eq!(c.call(T0 + 11, Outcome::Success), None);

    assert_eq!(c.s.state, CircuitState::Closed);
    assert_eq!(c.s.failure_count, 0);
    assert_eq!(c.s.success_count, 2);
    assert_eq!(c.s.last_success_ms, Some(T0 + 11));
    assert_eq!(c.s.last_failure_ms, Some(T0 + 3));
}

#[test]
fn fourth_consecutive_failure_keeps_the_circuit_closed() {
    let mut c = Circuit::new();
    for i in 0..4 {
        assert_eq!(c.call(T0 + i, Outcome::Failure), None);
    }
    assert_eq!(c.s.state, CircuitState::Closed);
    assert_eq!(c.s.failure_count, 4);
    assert_eq!(c.s.generation, 0);
}

#[test]
fn fifth_consecutive_failure_opens_with_one_and_a_half_second_backoff() {
    let mut c = Circuit::new();
    for i in 0..4 {
        c.call(T0 + i, Outcome::Failure);
    }

    let t = c
        .call(T0 + 10, Outcome::Failure)
        .expect("the fifth failure opens");

    assert_eq!((t.from, t.to), (CircuitState::Closed, CircuitState::Open));
    assert_eq!(t.reason, TransitionReason::FailureThreshold);
    assert_eq!(c.s.state, CircuitState::Open);
    assert_eq!(c.s.backoff_ms, 1_500);
    assert_eq!(c.s.open_until_ms, T0 + 10 + 1_500);
    assert_eq!(c.s.generation, 1);
    assert_eq!(c.s.last_failure_ms, Some(T0 + 10));
}

#[test]
fn a_success_between_failures_restarts_the_consecutive_count() {
    let mut c = Circuit::new();
    for i in 0..4 {
        c.call(T0 + i, Outcome::Failure);
    }
    c.call(T0 + 4, Outcome::Success);
    for i in 5..9 {
        assert_eq!(c.call(T0 + i, Outcome::Failure), None);
    }
    assert_eq!(c.s.state, CircuitState::Closed);
    assert_eq!(c.s.failure_count, 4);

    assert!(c.call(T0 + 9, Outcome::Failure).is_some());
    assert_eq!(c.s.state, CircuitState::Open);
}

#[test]
fn failures_of_concurrent_permits_open_in_the_order_the_store_applies_them() {
    let mut c = Circuit::new();
    let tickets: Vec<Ticket> = (0..5).map(|_| c.grant(T0)).collect();

    for ticket in &tickets[..4] {
        assert_eq!(c.record(T0 + 5, ticket, Outcome::Failure), None);
    }
    let opened = c.record(T0 + 6, &tickets[4], Outcome::Failure);

    assert_eq!(opened.map(|t| t.to), Some(CircuitState::Open));
}

#[test]
fn threshold_of_one_opens_on_the_first_failure() {
    let config = BreakerConfig::builder()
        .failure_threshold(1)
        .build()
        .expect("valid config");
    let mut c = Circuit::with_config(config);

    let t = c.call(T0, Outcome::Failure).expect("one failure opens");

    assert_eq!(t.to, CircuitState::Open);
    assert_eq!(c.s.open_until_ms, T0 + 1_500);
}
