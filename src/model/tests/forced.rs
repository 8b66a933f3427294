//! Operator overrides: forced open, forced closed, their expiry and `auto`.

use super::*;

#[test]
fn forced_open_rejects_every_call_with_retry_after_the_time_to_expiry() {
    let mut c = Circuit::new();
    c.force(T0, ForceMode::Open, Some(10_000));

    assert_eq!(c.reject(T0), (CircuitState::ForcedOpen, Some(10_000)));
    assert_eq!(
        c.reject(T0 + 4_000),
        (CircuitState::ForcedOpen, Some(6_000))
    );
    assert_eq!(c.reject(T0 + 9_999), (CircuitState::ForcedOpen, Some(1)));
    assert_eq!(c.s.total_rejections, 3);
}

#[test]
fn forced_open_without_ttl_rejects_forever_with_no_retry_after() {
    let mut c = Circuit::new();
    c.force(T0, ForceMode::Open, None);

    assert_eq!(c.reject(T0 + 1), (CircuitState::ForcedOpen, None));
    assert_eq!(c.reject(T0 + 86_400_000), (CircuitState::ForcedOpen, None));
    assert_eq!(c.s.state, CircuitState::ForcedOpen);
}

#[test]
fn forced_closed_admits_every_call_even_over_an_open_circuit() {
    let mut c = Circuit::new();
    c.trip(T0);
    c.force(T0 + 1, ForceMode::Closed, None);

    for i in 0..10 {
        let ticket = c.grant(T0 + 2 + i);
        assert_eq!(ticket.generation, 2);
    }
    assert_eq!(c.s.total_rejections, 0);
    assert!(c.s.probes.is_empty(), "forced closed grants no probes");
}

#[test]
fn forced_closed_counts_outcomes_and_never_opens_past_the_threshold() {
    let mut c = Circuit::new();
    c.force(T0, ForceMode::Closed, None);

    for i in 0..12 {
        assert_eq!(c.call(T0 + i, Outcome::Failure), None);
    }
    assert_eq!(c.s.state, CircuitState::ForcedClosed);
    assert_eq!(c.s.failure_count, 12);
    assert_eq!(c.s.last_failure_ms, Some(T0 + 11));
    assert_eq!(c.s.generation, 1);

    c.call(T0 + 20, Outcome::Success);
    assert_eq!(c.s.failure_count, 0);
    assert_eq!(c.s.success_count, 1);
    assert_eq!(c.s.last_success_ms, Some(T0 + 20));
}

#[test]
fn forced_open_expiry_closes_on_the_next_acquire_as_one_force_expired_transition() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, probe) = c.half_open();
    c.record(at, &probe, Outcome::Failure);
    assert_eq!(c.s.backoff_ms, 2_250);
    c.force(at, ForceMode::Open, Some(10_000));
    let generation = c.s.generation;

    let (step, _) = c.acquire(at + 10_000);

    let t = step.transition.expect("the expiry is a transition");
    assert_eq!(
        (t.from, t.to),
        (CircuitState::ForcedOpen, CircuitState::Closed)
    );
    assert_eq!(t.reason, TransitionReason::ForceExpired);
    assert_eq!(t.generation, generation + 1);
    assert_eq!(
        step.decision,
        Decision::Granted(Grant {
            generation: generation + 1,
            probe: false,
        })
    );
    assert_eq!(c.s.state, CircuitState::Closed);
    assert_eq!(c.s.failure_count, 0);
    assert_eq!(c.s.backoff_ms, 1_000);
    assert_eq!(c.s.forced_until_ms, None);
    assert_eq!(c.s.open_until_ms, 0);
}

#[test]
fn forced_closed_expiry_on_a_record_closes_with_failure_count_zero() {
    let mut c = Circuit::new();
    c.force(T0, ForceMode::Closed, Some(5_000));
    for i in 0..7 {
        c.call(T0 + i, Outcome::Failure);
    }
    let in_flight = c.grant(T0 + 100);

    let t = c.record(T0 + 5_000, &in_flight, Outcome::Failure);

    assert_eq!(t.map(|t| t.reason), Some(TransitionReason::ForceExpired));
    assert_eq!(c.s.state, CircuitState::Closed);
    assert_eq!(c.s.generation, 2);
    // The permit was granted under the force: its outcome is stale now.
    assert_eq!(c.s.failure_count, 0);
    assert_eq!(c.s.last_failure_ms, Some(T0 + 5_000));
}

#[test]
fn an_unexpired_force_makes_no_transition() {
    let mut c = Circuit::new();
    c.force(T0, ForceMode::Open, Some(5_000));
    let before = c.s.clone();

    assert_eq!(c.refresh(T0 + 4_999), None);
    assert_eq!(c.s, before);
    assert_eq!(
        c.refresh(T0 + 5_000).map(|t| t.to),
        Some(CircuitState::Closed)
    );
}

#[test]
fn force_auto_closes_with_failure_count_zero_and_base_backoff_as_force_cleared() {
    let mut c = Circuit::new();
    c.trip(T0);
    c.force(T0 + 1, ForceMode::Closed, Some(60_000));
    c.call(T0 + 2, Outcome::Failure);
    assert_eq!(c.s.failure_count, 6);

    let t = c.force(T0 + 3, ForceMode::Auto, Some(1));

    assert_eq!(
        (t.from, t.to),
        (CircuitState::ForcedClosed, CircuitState::Closed)
    );
    assert_eq!(t.reason, TransitionReason::ForceCleared);
    assert_eq!(t.generation, 3);
    assert_eq!(c.s.failure_count, 0);
    assert_eq!(c.s.backoff_ms, 1_000);
    assert_eq!(c.s.forced_until_ms, None, "auto ignores the ttl");
    assert_eq!(c.refresh(T0 + 10), None);
}

#[test]
fn forcing_a_half_open_circuit_drops_its_probes_and_makes_their_outcomes_stale() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, probe) = c.half_open();

    let t = c.force(at + 1, ForceMode::Closed, None);

    assert_eq!(
        (t.from, t.to),
        (CircuitState::HalfOpen, CircuitState::ForcedClosed)
    );
    assert!(c.s.probes.is_empty());
    let before = c.s.clone();
    c.record(at + 2, &probe, Outcome::Success);
    assert_eq!(with_stamps_of(&c.s, &before), before);
}

#[test]
fn each_force_is_one_transition_of_its_own() {
    let mut c = Circuit::new();
    let generations: Vec<u64> = [
        (ForceMode::Open, None),
        (ForceMode::Open, Some(1_000)),
        (ForceMode::Closed, None),
        (ForceMode::Auto, None),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (mode, ttl))| c.force(T0 + i as u64, mode, ttl).generation)
    .collect();

    assert_eq!(generations, [1, 2, 3, 4]);
    assert_eq!(c.s.generation, 4);
}
