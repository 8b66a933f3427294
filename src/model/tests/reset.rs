//! The admin reset: closed, counters zero, backoff base, probes cleared.

use super::*;

/// Closed and clean, with only the generation and the timestamps kept.
fn clean(config: &BreakerConfig, generation: u64, was: &Snapshot) -> Snapshot {
    Snapshot {
        generation,
        last_failure_ms: was.last_failure_ms,
        last_success_ms: was.last_success_ms,
        ..Snapshot::fresh(config)
    }
}

#[test]
fn reset_of_an_escalated_open_circuit_closes_it_with_every_counter_zero() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, probe) = c.half_open();
    c.record(at, &probe, Outcome::Failure);
    c.reject(at + 1);
    assert_eq!(c.s.backoff_ms, 2_250);
    let generation = c.s.generation;

    let t = c.reset(at + 2);

    assert_eq!((t.from, t.to), (CircuitState::Open, CircuitState::Closed));
    assert_eq!(t.reason, TransitionReason::Reset);
    assert_eq!(t.generation, generation + 1);
    assert_eq!(c.s, clean(&c.config, generation + 1, &c.s));
    assert_eq!(c.s.total_rejections, 0);
    c.grant(at + 3);
}

#[test]
fn reset_in_half_open_clears_probes_and_their_outcomes_become_stale() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, first) = c.half_open();
    let second = c.grant(at);
    c.record(at, &second, Outcome::Success);

    c.reset(at + 1);
    assert!(c.s.probes.is_empty());
    assert_eq!(c.s.half_open_successes, 0);
    assert_eq!(c.s.success_count, 0);
    let before = c.s.clone();

    assert_eq!(c.record(at + 2, &first, Outcome::Failure), None);
    assert_eq!(with_stamps_of(&c.s, &before), before);
}

#[test]
fn reset_of_a_closed_circuit_is_still_a_transition() {
    let mut c = Circuit::new();
    c.call(T0, Outcome::Success);
    c.call(T0, Outcome::Failure);

    let t = c.reset(T0 + 1);

    assert_eq!((t.from, t.to), (CircuitState::Closed, CircuitState::Closed));
    assert_eq!(c.s.generation, 1);
    assert_eq!(c.s, clean(&c.config, 1, &c.s));
}

#[test]
fn reset_ends_a_force() {
    let mut c = Circuit::new();
    c.force(T0, ForceMode::Open, Some(60_000));

    let t = c.reset(T0 + 1);

    assert_eq!(t.from, CircuitState::ForcedOpen);
    assert_eq!(c.s.forced_until_ms, None);
    assert_eq!(c.s, clean(&c.config, 2, &c.s));
    c.grant(T0 + 2);
}
