//! Open: reject until `open_until`; the first acquire at or after it probes.

use super::*;

#[test]
fn open_circuit_rejects_with_retry_after_the_time_left_until_open_until() {
    let mut c = Circuit::new();
    c.trip(T0);
    let open_until = T0 + 1_500;

    assert_eq!(c.reject(T0), (CircuitState::Open, Some(1_500)));
    assert_eq!(c.reject(T0 + 1_000), (CircuitState::Open, Some(500)));
    assert_eq!(c.reject(open_until - 1), (CircuitState::Open, Some(1)));

    assert_eq!(c.s.state, CircuitState::Open);
    assert_eq!(c.s.total_rejections, 3);
}

#[test]
fn rejections_while_open_change_nothing_but_total_rejections() {
    let mut c = Circuit::new();
    c.trip(T0);
    let before = c.s.clone();

    c.reject(T0 + 700);

    assert_eq!(
        c.s,
        Snapshot {
            total_rejections: before.total_rejections + 1,
            ..before
        }
    );
}

#[test]
fn first_acquire_at_open_until_goes_half_open_and_is_granted_the_first_probe() {
    let mut c = Circuit::new();
    c.trip(T0);
    let open_until = c.s.open_until_ms;

    let (step, permit_id) = c.acquire(open_until);

    let t = step.transition.expect("open -> half_open is a transition");
    assert_eq!((t.from, t.to), (CircuitState::Open, CircuitState::HalfOpen));
    assert_eq!(t.reason, TransitionReason::BackoffElapsed);
    assert_eq!(
        step.decision,
        Decision::Granted(Grant {
            generation: 2,
            probe: true,
        })
    );
    assert_eq!(c.s.generation, 2);
    assert_eq!(c.s.state, CircuitState::HalfOpen);
    assert_eq!(
        c.s.probes,
        [Lease {
            permit_id,
            deadline_ms: open_until + LEASE_MS,
        }]
    );
    assert_eq!(c.s.half_open_successes, 0);
    assert_eq!(c.s.total_rejections, 0, "the probe grant is no rejection");
}

#[test]
fn first_acquire_long_after_open_until_also_goes_half_open_with_a_probe() {
    let mut c = Circuit::new();
    c.trip(T0);
    let late = T0 + 3_600_000;

    let (step, _) = c.acquire(late);

    assert_eq!(step.transition.map(|t| t.at_ms), Some(late));
    assert!(matches!(
        step.decision,
        Decision::Granted(Grant { probe: true, .. })
    ));
    assert_eq!(c.s.probes[0].deadline_ms, late + LEASE_MS);
}

#[test]
fn only_the_first_acquire_after_the_backoff_makes_the_transition() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, _) = c.half_open();

    let (second, _) = c.acquire(at);

    assert_eq!(second.transition, None);
    assert_eq!(c.s.generation, 2);
    assert_eq!(c.s.probes.len(), 2);
}
