//! Probe leases: a probe not heard from in `recovery_timeout` gives its permit back.

use super::*;

#[test]
fn one_millisecond_before_the_deadline_the_lease_still_holds_its_permit() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, _) = c.half_open();
    c.grant(at);
    c.grant(at);

    assert_eq!(
        c.reject(at + LEASE_MS - 1),
        (CircuitState::HalfOpen, Some(1))
    );
    assert_eq!(c.s.probes.len(), 3);
}

#[test]
fn at_the_lease_deadline_lapsed_probes_are_dropped_and_their_permits_return() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, _) = c.half_open();
    c.grant(at);
    let later = c.grant(at + 10);

    let (step, permit_id) = c.acquire(at + LEASE_MS);

    assert!(matches!(
        step.decision,
        Decision::Granted(Grant { probe: true, .. })
    ));
    assert_eq!(step.transition, None, "a lapsed lease is no transition");
    assert_eq!(
        c.s.probes,
        [
            Lease {
                permit_id: later.permit_id,
                deadline_ms: at + 10 + LEASE_MS,
            },
            Lease {
                permit_id,
                deadline_ms: at + 2 * LEASE_MS,
            },
        ]
    );
}

#[test]
fn recording_another_probe_also_drops_lapsed_leases_first() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, _first) = c.half_open();
    let late = c.grant(at + 10_000);

    c.record(at + LEASE_MS, &late, Outcome::Success);

    assert!(c.s.probes.is_empty());
    assert_eq!(c.s.half_open_successes, 1);
}

#[test]
fn refresh_alone_drops_lapsed_leases() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, _) = c.half_open();
    let before = c.s.clone();

    assert_eq!(c.refresh(at + LEASE_MS), None);

    assert_eq!(
        c.s,
        Snapshot {
            probes: Vec::new(),
            ..before
        }
    );
}

#[test]
fn late_success_of_a_lapsed_probe_only_stamps_last_success() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, probe) = c.half_open();
    c.refresh(at + LEASE_MS);
    let before = c.s.clone();

    assert_eq!(c.record(at + LEASE_MS + 5, &probe, Outcome::Success), None);

    assert_eq!(c.s.last_success_ms, Some(at + LEASE_MS + 5));
    assert_eq!(with_stamps_of(&c.s, &before), before);
    assert_eq!(c.s.half_open_successes, 0);
}

#[test]
fn late_failure_of_a_lapsed_probe_only_stamps_last_failure_and_does_not_reopen() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, probe) = c.half_open();
    let before = c.s.clone();

    let t = c.record(at + LEASE_MS, &probe, Outcome::Failure);

    assert_eq!(t, None);
    assert_eq!(c.s.state, CircuitState::HalfOpen);
    assert_eq!(c.s.last_failure_ms, Some(at + LEASE_MS));
    assert_eq!(
        with_stamps_of(&c.s, &before),
        Snapshot {
            probes: Vec::new(),
            ..before
        }
    );
}

#[test]
fn a_custom_recovery_timeout_sets_the_lease_deadline() {
    let config = BreakerConfig::builder()
        .recovery_timeout(std::time::Duration::from_millis(250))
        .build()
        .expect("valid config");
    let mut c = Circuit::with_config(config);
    c.trip(T0);
    let (at, _) = c.half_open();

    assert_eq!(c.s.probes[0].deadline_ms, at + 250);
    c.refresh(at + 250);
    assert!(c.s.probes.is_empty());
}
