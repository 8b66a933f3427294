//! Half-open: `half_open_max_calls` probes; their successes close, a failure reopens.

use super::*;

#[test]
fn half_open_grants_exactly_three_probes_and_rejects_the_fourth_until_the_earliest_lease_ends() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, _first) = c.half_open();
    c.grant(at + 100);
    c.grant(at + 200);

    let rejected = c.reject(at + 300);

    assert_eq!(rejected, (CircuitState::HalfOpen, Some(LEASE_MS - 300)));
    assert_eq!(c.s.probes.len(), 3);
    assert_eq!(c.s.total_rejections, 1);
}

#[test]
fn probe_success_counts_half_open_successes_and_success_count() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, first) = c.half_open();
    let second = c.grant(at);

    assert_eq!(c.record(at + 5, &first, Outcome::Success), None);
    assert_eq!(c.record(at + 6, &second, Outcome::Success), None);

    assert_eq!(c.s.state, CircuitState::HalfOpen);
    assert_eq!(c.s.half_open_successes, 2);
    assert_eq!(c.s.success_count, 2);
    assert_eq!(
        c.s.failure_count, 5,
        "failure_count counts the closed state only: probes leave the count that opened"
    );
    assert_eq!(c.s.last_success_ms, Some(at + 6));
    assert!(c.s.probes.is_empty());
}

#[test]
fn a_probe_success_frees_no_permit_but_a_settled_neutral_probe_does() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, first) = c.half_open();
    let second = c.grant(at);
    let _third = c.grant(at);
    c.record(at + 1, &first, Outcome::Success);

    // 2 in flight + 1 success = 3: still full.
    assert_eq!(c.reject(at + 2).0, CircuitState::HalfOpen);

    c.record(at + 3, &second, Outcome::Neutral);
    // 1 in flight + 1 success: one permit free, then full again.
    c.grant(at + 4);
    assert_eq!(c.reject(at + 5).0, CircuitState::HalfOpen);
}

#[test]
fn third_probe_success_closes_with_counters_reset_base_backoff_and_generation_plus_one() {
    let mut c = Circuit::new();
    c.trip(T0);
    c.reject(T0 + 1);
    let (at, first) = c.half_open();
    let probes = [first, c.grant(at), c.grant(at)];
    c.record(at + 1, &probes[0], Outcome::Success);
    c.record(at + 2, &probes[1], Outcome::Success);

    let t = c
        .record(at + 3, &probes[2], Outcome::Success)
        .expect("the third success closes");

    assert_eq!(
        (t.from, t.to),
        (CircuitState::HalfOpen, CircuitState::Closed)
    );
    assert_eq!(t.reason, TransitionReason::ProbesSucceeded);
    assert_eq!(c.s.state, CircuitState::Closed);
    assert_eq!(c.s.generation, 3);
    assert_eq!(c.s.failure_count, 0);
    assert_eq!(c.s.half_open_successes, 0);
    assert_eq!(c.s.backoff_ms, 1_000);
    assert_eq!(c.s.open_until_ms, 0);
    assert!(c.s.probes.is_empty());
    assert_eq!(c.s.total_rejections, 1, "rejections count until a reset");
    assert_eq!(c.s.last_success_ms, Some(at + 3));
}

#[test]
fn probe_failure_reopens_with_escalated_backoff_and_clears_success_count() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, first) = c.half_open();
    let second = c.grant(at);
    c.record(at + 1, &first, Outcome::Success);
    assert_eq!(c.s.success_count, 1);

    let t = c
        .record(at + 2, &second, Outcome::Failure)
        .expect("a probe failure reopens");

    assert_eq!((t.from, t.to), (CircuitState::HalfOpen, CircuitState::Open));
    assert_eq!(t.reason, TransitionReason::ProbeFailed);
    assert_eq!(c.s.state, CircuitState::Open);
    assert_eq!(c.s.backoff_ms, 2_250);
    assert_eq!(c.s.open_until_ms, at + 2 + 2_250);
    assert_eq!(c.s.success_count, 0);
    assert_eq!(c.s.last_failure_ms, Some(at + 2));
    assert_eq!(c.s.half_open_successes, 0);
    assert_eq!(c.s.generation, 3);
    assert!(c.s.probes.is_empty());
}

#[test]
fn probe_failure_while_other_probes_are_in_flight_still_reopens_at_once() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, first) = c.half_open();
    let _in_flight = [c.grant(at), c.grant(at)];

    let t = c.record(at + 1, &first, Outcome::Failure);

    assert_eq!(t.map(|t| t.to), Some(CircuitState::Open));
    assert!(c.s.probes.is_empty(), "the reopening drops every lease");
}

#[test]
fn with_one_half_open_call_a_single_probe_success_closes() {
    let config = BreakerConfig::builder()
        .half_open_max_calls(1)
        .build()
        .expect("valid config");
    let mut c = Circuit::with_config(config);
    c.trip(T0);
    let (at, probe) = c.half_open();
    assert_eq!(c.reject(at).0, CircuitState::HalfOpen);

    let t = c.record(at + 1, &probe, Outcome::Success);

    assert_eq!(t.map(|t| t.reason), Some(TransitionReason::ProbesSucceeded));
    assert_eq!(c.s.state, CircuitState::Closed);
}

#[test]
fn repeated_openings_keep_failure_count_at_the_threshold_that_opened() {
    let mut c = Circuit::new();
    c.trip(T0);
    assert_eq!(c.s.failure_count, 5);
    for round in 0..6 {
        let (at, probe) = c.half_open();
        assert_eq!(c.s.failure_count, 5, "half-open, round {round}");

        let t = c.record(at + 1, &probe, Outcome::Failure);

        assert_eq!(t.map(|t| t.reason), Some(TransitionReason::ProbeFailed));
        assert_eq!(c.s.failure_count, 5, "reopened, round {round}");
        assert_eq!(c.s.success_count, 0);
        assert_eq!(c.s.last_failure_ms, Some(at + 1));
    }
}

#[test]
fn a_probe_failure_after_probe_successes_reopens_with_the_count_that_opened() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, first) = c.half_open();
    let second = c.grant(at);
    c.record(at + 1, &first, Outcome::Success);

    c.record(at + 2, &second, Outcome::Failure);

    assert_eq!(c.s.state, CircuitState::Open);
    assert_eq!((c.s.failure_count, c.s.success_count), (5, 0));
}
