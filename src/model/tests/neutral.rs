//! Neutral outcomes: release a probe permit, count nothing.

use super::*;

#[test]
fn neutral_probe_outcome_releases_its_permit_and_counts_nothing() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, first) = c.half_open();
    let _others = [c.grant(at), c.grant(at)];
    let before = c.s.clone();

    assert_eq!(c.record(at + 1, &first, Outcome::Neutral), None);

    let mut expected = before;
    expected
        .probes
        .retain(|lease| lease.permit_id != first.permit_id);
    assert_eq!(c.s, expected);
    assert_eq!(c.s.probes.len(), 2);
    // Its permit is free again.
    c.grant(at + 2);
}

#[test]
fn neutral_outcome_in_closed_changes_nothing_at_all() {
    let mut c = Circuit::new();
    c.call(T0, Outcome::Success);
    c.call(T0 + 1, Outcome::Failure);
    let ticket = c.grant(T0 + 2);
    let before = c.s.clone();

    assert_eq!(c.record(T0 + 3, &ticket, Outcome::Neutral), None);

    assert_eq!(c.s, before);
}

#[test]
fn neutral_outcome_in_forced_closed_changes_nothing_at_all() {
    let mut c = Circuit::new();
    c.force(T0, ForceMode::Closed, None);
    c.call(T0 + 1, Outcome::Failure);
    let ticket = c.grant(T0 + 2);
    let before = c.s.clone();

    assert_eq!(c.record(T0 + 3, &ticket, Outcome::Neutral), None);

    assert_eq!(c.s, before);
}
