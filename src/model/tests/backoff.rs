//! Backoff: every opening multiplies it (floored), capped; a close resets it.

use std::time::Duration;

use super::*;

/// `min(floor(prev x 1.5), 60 000)` in integers, independent of the model's f64.
fn next_default_backoff(prev_ms: u64) -> u64 {
    (prev_ms * 3 / 2).min(60_000)
}

#[test]
fn repeated_openings_wait_1500_2250_3375_5062_ms_and_so_on_up_to_sixty_seconds() {
    let mut c = Circuit::new();
    let first = c.trip(T0);
    let mut openings = vec![(first, T0)];
    // Each probe failure reopens at once, escalating the backoff again.
    for _ in 0..13 {
        let (at, probe) = c.half_open();
        let reopened = c
            .record(at + 7, &probe, Outcome::Failure)
            .expect("a probe failure reopens");
        openings.push((reopened, at + 7));
    }

    let mut expected = Vec::new();
    let mut backoff = 1_000;
    for _ in 0..openings.len() {
        backoff = next_default_backoff(backoff);
        expected.push(backoff);
    }
    assert_eq!(expected[..4], [1_500, 2_250, 3_375, 5_062]);
    assert_eq!(expected[10..], [60_000, 60_000, 60_000, 60_000]);

    for ((transition, at), backoff_ms) in openings.iter().zip(&expected) {
        assert_eq!(transition.to, CircuitState::Open);
        assert_eq!(
            transition.open_until_ms,
            at + backoff_ms,
            "open_until = now + backoff"
        );
        #[allow(clippy::cast_precision_loss)]
        let seconds = *backoff_ms as f64 / 1000.0;
        assert!((transition.backoff_seconds - seconds).abs() < 1e-9);
    }
    assert_eq!(c.s.backoff_ms, 60_000);
}

#[test]
fn escalate_backoff_floors_the_product_and_caps_it() {
    let config = BreakerConfig::default();
    assert_eq!(escalate_backoff(1_000, &config), 1_500);
    assert_eq!(escalate_backoff(3_375, &config), 5_062);
    assert_eq!(escalate_backoff(5_062, &config), 7_593);
    assert_eq!(escalate_backoff(57_654, &config), 60_000);
    assert_eq!(escalate_backoff(60_000, &config), 60_000);
}

#[test]
fn multiplier_of_one_keeps_every_opening_at_base_backoff() {
    let config = BreakerConfig::builder()
        .backoff_multiplier(1.0)
        .build()
        .expect("valid config");
    let mut c = Circuit::with_config(config);
    c.trip(T0);
    let (at, probe) = c.half_open();
    c.record(at, &probe, Outcome::Failure);

    assert_eq!(c.s.backoff_ms, 1_000);
    assert_eq!(c.s.open_until_ms, at + 1_000);
}

#[test]
fn closing_after_escalation_returns_backoff_to_base_so_the_next_opening_waits_1500_ms() {
    let mut c = Circuit::new();
    c.trip(T0);
    let (at, probe) = c.half_open();
    c.record(at, &probe, Outcome::Failure);
    assert_eq!(c.s.backoff_ms, 2_250);

    let (at, first) = c.half_open();
    let others = [c.grant(at), c.grant(at)];
    c.record(at + 1, &first, Outcome::Success);
    c.record(at + 2, &others[0], Outcome::Success);
    let closed = c.record(at + 3, &others[1], Outcome::Success);
    assert_eq!(closed.map(|t| t.to), Some(CircuitState::Closed));
    assert_eq!(c.s.backoff_ms, 1_000);

    let reopened = c.trip(at + 100);
    assert_eq!(c.s.backoff_ms, 1_500);
    assert_eq!(reopened.open_until_ms, at + 100 + 1_500);
}

#[test]
fn a_custom_base_and_multiplier_escalate_from_that_base() {
    let config = BreakerConfig::builder()
        .base_backoff(Duration::from_millis(200))
        .backoff_multiplier(2.5)
        .max_backoff(Duration::from_millis(2_000))
        .build()
        .expect("valid config");
    let mut c = Circuit::with_config(config);

    let mut seen = vec![c.trip(T0).open_until_ms - T0];
    for _ in 0..3 {
        let (at, probe) = c.half_open();
        let t = c.record(at, &probe, Outcome::Failure).expect("reopens");
        seen.push(t.open_until_ms - at);
    }

    assert_eq!(seen, [500, 1_250, 2_000, 2_000]);
}
