//! Properties over random operation sequences: invariants no sequence may break.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::*;

/// Cases per property; the report of the test run quotes this number.
const CASES: u32 = 512;

#[derive(Debug, Clone)]
enum Op {
    /// Let time pass.
    Advance(u64),
    /// Ask for a permit; keep its ticket if granted.
    Acquire,
    /// Settle one of the outstanding tickets (chosen by index, modulo).
    Record(usize, Outcome),
    /// Settle a ticket of an older generation than the current one.
    RecordStale(Outcome),
    Refresh,
    Reset,
    Force(ForceMode, Option<u64>),
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        4 => Just(Outcome::Failure),
        4 => Just(Outcome::Success),
        1 => Just(Outcome::Neutral),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..=50).prop_map(Op::Advance),
        2 => (0u64..=5_000).prop_map(Op::Advance),
        1 => (0u64..=120_000).prop_map(Op::Advance),
        6 => Just(Op::Acquire),
        6 => (any::<usize>(), outcome()).prop_map(|(i, o)| Op::Record(i, o)),
        1 => outcome().prop_map(Op::RecordStale),
        1 => Just(Op::Refresh),
        1 => Just(Op::Reset),
        1 => (
            prop_oneof![Just(ForceMode::Open), Just(ForceMode::Closed), Just(ForceMode::Auto)],
            proptest::option::of(1u64..=60_000),
        )
            .prop_map(|(mode, ttl)| Op::Force(mode, ttl)),
    ]
}

fn valid_config() -> impl Strategy<Value = BreakerConfig> {
    (
        1u32..=8,
        1u32..=5,
        1u64..=5_000,
        prop_oneof![Just(1.0), 1.0f64..=4.0, Just(1000.0)],
        0u64..=120_000,
        1u64..=60_000,
    )
        .prop_map(|(threshold, calls, base, multiplier, extra, lease)| {
            BreakerConfig::builder()
                .failure_threshold(threshold)
                .half_open_max_calls(calls)
                .base_backoff(Duration::from_millis(base))
                .backoff_multiplier(multiplier)
                .max_backoff(Duration::from_millis(base + extra))
                .recovery_timeout(Duration::from_millis(lease))
                .build()
                .expect("the strategy yields valid configs")
        })
}

/// Runs `ops`, checking every invariant after each one.
fn run(config: BreakerConfig, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut c = Circuit::with_config(config);
    let mut now = T0;
    let mut tickets: Vec<Ticket> = Vec::new();
    for op in ops {
        let before = c.s.clone();
        let mut rejected = false;
        let transition = match op {
            Op::Advance(ms) => {
                now += ms;
                continue;
            }
            Op::Acquire => {
                let (step, permit_id) = c.acquire(now);
                match step.decision {
                    Decision::Granted(grant) => {
                        prop_assert_eq!(grant.generation, c.s.generation);
                        prop_assert_eq!(grant.probe, c.s.state == CircuitState::HalfOpen);
                        tickets.push(Ticket {
                            permit_id,
                            generation: grant.generation,
                        });
                    }
                    Decision::Rejected {
                        state,
                        retry_after_ms,
                    } => {
                        rejected = true;
                        prop_assert_eq!(state, c.s.state);
                        check_retry_after(&c.s, now, retry_after_ms)?;
                    }
                }
                step.transition
            }
            Op::Record(index, outcome) if !tickets.is_empty() => {
                let ticket = tickets.remove(index % tickets.len());
                c.record(now, &ticket, *outcome)
            }
            Op::Record(..) => continue,
            Op::RecordStale(outcome) => {
                let Some(generation) = c.s.generation.checked_sub(1) else {
                    continue;
                };
                let stale = Ticket {
                    permit_id: "stale".into(),
                    generation,
                };
                c.record(now, &stale, *outcome)
            }
            Op::Refresh => c.refresh(now),
            Op::Reset => Some(c.reset(now)),
            Op::Force(mode, ttl) => Some(c.force(now, *mode, *ttl)),
        };
        check_step(&c, &before, now, transition.as_ref(), rejected)?;
    }
    Ok(())
}

fn check_retry_after(
    s: &Snapshot,
    now: u64,
    retry_after: Option<u64>,
) -> Result<(), TestCaseError> {
    match s.state {
        CircuitState::Open => prop_assert_eq!(retry_after, Some(s.open_until_ms - now)),
        CircuitState::ForcedOpen => {
            prop_assert_eq!(retry_after, s.forced_until_ms.map(|until| until - now));
        }
        CircuitState::HalfOpen => {
            let earliest = s.probes.iter().map(|l| l.deadline_ms).min();
            prop_assert_eq!(retry_after, earliest.map(|d| d - now));
        }
        state => prop_assert!(false, "{state} rejected a call"),
    }
    prop_assert!(retry_after != Some(0), "retry_after is never zero");
    Ok(())
}

fn check_step(
    c: &Circuit,
    before: &Snapshot,
    now: u64,
    transition: Option<&Transition>,
    rejected: bool,
) -> Result<(), TestCaseError> {
    let s = &c.s;
    let config = &c.config;
    prop_assert!(s.generation >= before.generation, "generation went back");
    prop_assert_eq!(
        s.generation - before.generation,
        u64::from(transition.is_some()),
        "generation rises by exactly the number of transitions (at most one)"
    );
    if let Some(t) = transition {
        prop_assert_eq!(t.generation, s.generation);
        prop_assert_eq!(t.from, before.state);
        prop_assert_eq!(t.to, s.state);
        prop_assert_eq!(t.at_ms, now);
        prop_assert_eq!(t.open_until_ms, s.open_until_ms);
        prop_assert_eq!(t.backoff_seconds, backoff_seconds(s.backoff_ms));
    }
    if !matches!(transition.map(|t| t.reason), Some(TransitionReason::Reset)) {
        let expected = before.total_rejections + u64::from(rejected);
        prop_assert_eq!(s.total_rejections, expected, "one per rejection");
    }
    prop_assert!(
        s.probes.len() as u64 + u64::from(s.half_open_successes)
            <= u64::from(config.half_open_max_calls)
    );
    if s.state != CircuitState::HalfOpen {
        prop_assert!(s.probes.is_empty(), "probes outside half_open");
        prop_assert_eq!(s.half_open_successes, 0);
    }
    prop_assert!(
        s.probes.iter().all(|l| l.deadline_ms > now),
        "a lapsed lease survived"
    );
    prop_assert!(s.backoff_ms >= config.base_backoff_ms());
    prop_assert!(s.backoff_ms <= config.max_backoff_ms());
    if s.state == CircuitState::Closed {
        prop_assert!(s.failure_count < u64::from(config.failure_threshold));
        prop_assert_eq!(s.backoff_ms, config.base_backoff_ms());
    }
    if s.state == CircuitState::Open {
        prop_assert!(s.open_until_ms > 0);
    }
    if matches!(s.state, CircuitState::Open | CircuitState::HalfOpen) {
        // Only the closed state counts failures: a circuit is open or
        // half-open with the count that opened it, however often it reopened.
        prop_assert_eq!(s.failure_count, u64::from(config.failure_threshold));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn invariants_hold_over_random_operations_with_the_default_config(
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        run(BreakerConfig::default(), &ops)?;
    }

    #[test]
    fn invariants_hold_over_random_operations_with_random_valid_configs(
        config in valid_config(),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        run(config, &ops)?;
    }

    #[test]
    fn a_stale_outcome_changes_only_the_outcome_timestamps(
        config in valid_config(),
        ops in proptest::collection::vec(op(), 1..120),
        outcome in outcome(),
        later in 0u64..=5_000,
    ) {
        let mut c = Circuit::with_config(config);
        let mut now = T0;
        for op in &ops {
            match op {
                Op::Advance(ms) => now += ms,
                Op::Acquire | Op::Record(..) | Op::RecordStale(_) => {
                    // Drive the circuit with calls that settle at once.
                    let (step, permit_id) = c.acquire(now);
                    if let Decision::Granted(grant) = step.decision {
                        let ticket = Ticket { permit_id, generation: grant.generation };
                        let outcome = match op {
                            Op::Record(_, o) | Op::RecordStale(o) => *o,
                            _ => Outcome::Failure,
                        };
                        c.record(now, &ticket, outcome);
                    }
                }
                Op::Refresh => { c.refresh(now); }
                Op::Reset => { c.reset(now); }
                Op::Force(mode, ttl) => { c.force(now, *mode, *ttl); }
            }
        }
        prop_assume!(c.s.generation > 0);
        now += later;
        let stale = Ticket { permit_id: "permit-1".into(), generation: c.s.generation - 1 };
        // What the operation may do anyway: drop lapsed leases, end a force.
        let mut expected = c.s.clone();
        refresh(&mut expected, &c.config, &c.agent, now);

        c.record(now, &stale, outcome);

        match outcome {
            Outcome::Success => prop_assert_eq!(c.s.last_success_ms, Some(now)),
            Outcome::Failure => prop_assert_eq!(c.s.last_failure_ms, Some(now)),
            Outcome::Neutral => prop_assert_eq!(&c.s, &expected),
        }
        prop_assert_eq!(with_stamps_of(&c.s, &expected), expected);
    }
}
