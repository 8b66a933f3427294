//! Generations: every transition bumps it; a stale outcome only stamps the time.

use super::*;

#[test]
fn every_automatic_transition_increments_generation_by_one() {
    let mut c = Circuit::new();
    let mut seen = vec![c.trip(T0).generation];
    let (at, first) = c.half_open();
    seen.push(c.s.generation);
    seen.push(
        c.record(at, &first, Outcome::Failure)
            .expect("reopens")
            .generation,
    );
    let (at, first) = c.half_open();
    seen.push(c.s.generation);
    let rest = [c.grant(at), c.grant(at)];
    c.record(at, &first, Outcome::Success);
    c.record(at, &rest[0], Outcome::Success);
    seen.push(
        c.record(at, &rest[1], Outcome::Success)
            .expect("closes")
            .generation,
    );

    assert_eq!(seen, [1, 2, 3, 4, 5]);
    assert_eq!(c.s.generation, 5);
}

#[test]
fn a_permit_carries_the_generation_it_was_granted_in() {
    let mut c = Circuit::new();
    assert_eq!(c.grant(T0).generation, 0);
    c.trip(T0);
    let (_, probe) = c.half_open();
    assert_eq!(probe.generation, 2);
}

#[test]
fn stale_success_from_before_the_opening_changes_only_last_success_ms() {
    let mut c = Circuit::new();
    let old = c.grant(T0);
    c.trip(T0);
    let before = c.s.clone();

    assert_eq!(c.record(T0 + 100, &old, Outcome::Success), None);

    assert_eq!(c.s.last_success_ms, Some(T0 + 100));
    assert_eq!(with_stamps_of(&c.s, &before), before);
}

#[test]
fn stale_failure_in_half_open_changes_only_last_failure_ms_and_does_not_reopen() {
    let mut c = Circuit::new();
    let old = c.grant(T0);
    c.trip(T0);
    let (at, _) = c.half_open();
    let before = c.s.clone();

    assert_eq!(c.record(at + 1, &old, Outcome::Failure), None);

    assert_eq!(c.s.last_failure_ms, Some(at + 1));
    assert_eq!(with_stamps_of(&c.s, &before), before);
}

#[test]
fn stale_probe_outcome_after_the_close_is_not_counted() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, first) = c.half_open();
    let probes = [c.grant(at), c.grant(at)];
    c.record(at, &first, Outcome::Success);
    // Reopen with a stale-to-be probe still out, then close on the next round.
    c.record(at, &probes[0], Outcome::Failure);
    let (at, first) = c.half_open();
    let rest = [c.grant(at), c.grant(at)];
    for ticket in [&first, &rest[0], &rest[1]] {
        c.record(at, ticket, Outcome::Success);
    }
    assert_eq!(c.s.state, CircuitState::Closed);
    let before = c.s.clone();

    assert_eq!(c.record(at + 1, &probes[1], Outcome::Failure), None);

    assert_eq!(c.s.failure_count, 0);
    assert_eq!(c.s.last_failure_ms, Some(at + 1));
    assert_eq!(with_stamps_of(&c.s, &before), before);
}

#[test]
fn stale_neutral_outcome_changes_nothing_at_all() {
    let mut c = Circuit::new();
    let old = c.grant(T0);
    c.trip(T0);
    let (at, _) = c.half_open();
    let before = c.s.clone();

    c.record(at + 1, &old, Outcome::Neutral);

    assert_eq!(c.s, before);
}
