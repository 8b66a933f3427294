//! The trip policies: failure rate, slow-call rate, retry-after, quorum,
//! jitter and per-agent settings (DESIGN.md section 2, "Trip policies").

use std::time::Duration;

use super::*;
use crate::model::{Batch, configure, flush, jittered, local_trip};

/// 50% over 10 s of 1 s buckets, at least 10 calls; consecutive rule as
/// good as off (1,000 failures).
fn rate_config() -> BreakerConfig {
    BreakerConfig::builder()
        .failure_threshold(1000)
        .failure_rate_threshold(Some(0.5))
        .minimum_calls(10)
        .build()
        .unwrap()
}

fn call_from(c: &mut Circuit, now_ms: u64, outcome: Outcome, pod: &str) -> Option<Transition> {
    let ticket = c.grant(now_ms);
    c.report(
        now_ms,
        &ticket,
        &Report {
            outcome,
            slow: false,
            retry_after_ms: None,
            pod,
        },
    )
}

#[test]
fn a_failure_rate_at_the_threshold_opens_once_minimum_calls_are_in() {
    let mut c = Circuit::with_config(rate_config());
    // 1 failure in 3 never opens on the consecutive rule, nor on a 50% rate.
    for i in 0..6 {
        let outcome = if i % 3 == 0 {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        assert_eq!(c.call(T0 + i, outcome), None);
    }
    // Now 4 failures of 8: below minimum_calls (10), no trip.
    assert_eq!(c.call(T0 + 10, Outcome::Failure), None);
    assert_eq!(c.call(T0 + 11, Outcome::Failure), None);
    assert_eq!(c.s.window.counts(&c.config, T0 + 11).calls, 8);
    // 5 of 9, then 6 of 10: the tenth call is a failure at 60%: opens.
    assert_eq!(c.call(T0 + 12, Outcome::Failure), None);
    let t = c.call(T0 + 13, Outcome::Failure).expect("the rate trips");
    assert_eq!(t.reason, TransitionReason::FailureRate);
    assert_eq!(c.s.state, CircuitState::Open);
    assert_eq!(
        c.s.backoff_ms, 1_500,
        "backoff escalates as for any opening"
    );
}

#[test]
fn a_success_never_trips_and_a_rate_below_the_threshold_stays_closed() {
    let mut c = Circuit::with_config(rate_config());
    for i in 0..100 {
        let outcome = if i % 3 == 0 {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        assert_eq!(c.call(T0 + i, outcome), None, "34% of 100 calls");
    }
    let w = c.s.window.counts(&c.config, T0 + 100);
    assert_eq!((w.calls, w.failures), (100, 34));
}

#[test]
fn buckets_age_out_of_the_window_and_a_clock_jump_back_counts_nothing_ahead() {
    let config = rate_config();
    let mut c = Circuit::with_config(config);
    for i in 0..9 {
        c.call(T0 + i, Outcome::Failure);
    }
    assert_eq!(c.s.window.counts(&config, T0 + 9_999).failures, 9);
    // T0 is at a bucket boundary (1.7e12 is a multiple of 1,000): ten
    // seconds later that bucket has left the window.
    assert_eq!(c.s.window.counts(&config, T0 + 10_000).failures, 0);
    // The tenth failure, 10 s later, is alone: no trip, and the old bucket
    // is dropped when the window is written.
    assert_eq!(c.call(T0 + 10_000, Outcome::Failure), None);
    assert_eq!(c.s.window.buckets.len(), 1);
    // The clock goes back 5 s: the bucket ahead counts nothing.
    assert_eq!(c.s.window.counts(&config, T0 + 5_000).calls, 0);
    assert_eq!(c.call(T0 + 5_000, Outcome::Success), None);
    assert_eq!(c.s.window.buckets.len(), 1, "the bucket ahead was dropped");
    assert_eq!(c.s.window.counts(&config, T0 + 5_000).calls, 1);
}

#[test]
fn slow_calls_trip_on_their_own_rate_and_a_slow_success_is_a_success() {
    let config = BreakerConfig::builder()
        .slow_call_duration(Some(Duration::from_millis(500)))
        .slow_call_rate_threshold(Some(0.8))
        .minimum_calls(5)
        .build()
        .unwrap();
    let mut c = Circuit::with_config(config);
    let slow = |c: &mut Circuit, at| {
        let ticket = c.grant(at);
        c.report(
            at,
            &ticket,
            &Report {
                outcome: Outcome::Success,
                slow: true,
                retry_after_ms: None,
                pod: "p",
            },
        )
    };
    for i in 0..4 {
        assert_eq!(slow(&mut c, T0 + i), None);
    }
    assert_eq!(c.s.success_count, 4, "slow successes are successes");
    let t = slow(&mut c, T0 + 4).expect("5 of 5 slow");
    assert_eq!(t.reason, TransitionReason::SlowCallRate);
}

#[test]
fn a_retry_after_opens_at_once_for_at_least_that_long_capped_at_max_backoff() {
    let mut c = Circuit::new();
    let ticket = c.grant(T0);
    let report = Report {
        outcome: Outcome::Failure,
        slow: false,
        retry_after_ms: Some(20_000),
        pod: "p",
    };
    let t = c.report(T0, &ticket, &report).expect("opens at once");
    assert_eq!(t.reason, TransitionReason::RetryAfter);
    assert_eq!(
        c.s.open_until_ms,
        T0 + 20_000,
        "longer than the 1.5 s backoff"
    );
    assert_eq!(c.s.backoff_ms, 1_500, "the backoff escalates as usual");
    // Half-open, a probe fails with a retry-after beyond max_backoff (60 s).
    let ticket = c.grant(T0 + 20_000);
    let long = Report {
        retry_after_ms: Some(3_600_000),
        ..report
    };
    let t = c.report(T0 + 20_000, &ticket, &long).expect("reopens");
    assert_eq!(t.reason, TransitionReason::RetryAfter);
    assert_eq!(c.s.open_until_ms, T0 + 20_000 + 60_000);
    // A retry-after shorter than the backoff leaves the backoff.
    let ticket = c.grant(T0 + 80_000);
    let short = Report {
        retry_after_ms: Some(1),
        ..report
    };
    c.report(T0 + 80_000, &ticket, &short).expect("reopens");
    assert_eq!(c.s.open_until_ms, T0 + 80_000 + c.s.backoff_ms);
    // A success's retry-after means nothing.
    let mut d = Circuit::new();
    let ticket = d.grant(T0);
    let odd = Report {
        outcome: Outcome::Success,
        ..report
    };
    assert_eq!(d.report(T0, &ticket, &odd), None);
}

#[test]
fn below_the_quorum_a_trip_stays_local_and_a_second_pod_makes_it_fleet_wide() {
    let config = BreakerConfig::builder()
        .min_reporting_pods(2)
        .build()
        .unwrap();
    let mut c = Circuit::with_config(config);
    for i in 0..7 {
        assert_eq!(call_from(&mut c, T0 + i, Outcome::Failure, "pod-a"), None);
    }
    assert_eq!(
        c.s.state,
        CircuitState::Closed,
        "one pod cannot open the fleet"
    );
    assert_eq!(c.s.failure_count, 7);
    assert_eq!(
        local_trip(&c.s, &config, T0 + 7),
        Some(TransitionReason::FailureThreshold),
        "but pod-a opens it for itself"
    );
    let t = call_from(&mut c, T0 + 8, Outcome::Failure, "pod-b").expect("two pods: a trip");
    assert_eq!(t.reason, TransitionReason::FailureThreshold);
    assert_eq!(
        local_trip(&c.s, &config, T0 + 8),
        None,
        "open fleet-wide, not locally"
    );
}

#[test]
fn the_quorum_keeps_only_as_many_reporters_as_it_needs_and_they_age_out() {
    let config = BreakerConfig::builder()
        .min_reporting_pods(2)
        .build()
        .unwrap();
    let mut c = Circuit::with_config(config);
    call_from(&mut c, T0, Outcome::Failure, "pod-a");
    call_from(&mut c, T0 + 1, Outcome::Success, "pod-b");
    call_from(&mut c, T0 + 2, Outcome::Failure, "pod-c");
    call_from(&mut c, T0 + 3, Outcome::Failure, "pod-d");
    let pods: Vec<&str> =
        c.s.window
            .reporters
            .iter()
            .map(|r| r.pod.as_str())
            .collect();
    assert_eq!(pods, ["pod-a", "pod-c"], "same bucket: by pod id, two kept");
    // 10 s later pod-a reports again: the old reporters are out of the window.
    assert_eq!(
        call_from(&mut c, T0 + 10_000, Outcome::Failure, "pod-a"),
        None
    );
    assert_eq!(c.s.window.counts(&config, T0 + 10_000).reporting_pods, 1);
}

#[test]
fn jitter_spreads_open_times_within_bounds_the_same_for_every_caller() {
    let config = BreakerConfig::builder()
        .backoff_jitter(0.5)
        .build()
        .unwrap();
    let agent = agent_id();
    let mut seen = std::collections::BTreeSet::new();
    for generation in 0..200 {
        let j = jittered(10_000, &config, &agent, generation, T0);
        assert!((5_000..=15_000).contains(&j), "{j}");
        assert_eq!(j, jittered(10_000, &config, &agent, generation, T0));
        seen.insert(j);
    }
    assert!(seen.len() > 150, "spread out: {} distinct", seen.len());
    let none = BreakerConfig::default();
    assert_eq!(jittered(10_000, &none, &agent, 3, T0), 10_000);
    // The opening uses it; the stored backoff stays unjittered.
    let mut c = Circuit::with_config(config);
    let t = c.trip(T0);
    assert_eq!(c.s.backoff_ms, 1_500);
    assert_eq!(
        c.s.open_until_ms,
        T0 + jittered(1_500, &config, &agent, t.generation, T0)
    );
}

#[test]
fn settings_stored_for_the_agent_override_the_process_config() {
    let mut c = Circuit::new();
    configure(
        &mut c.s,
        AgentSettings {
            failure_threshold: Some(2),
            ..AgentSettings::default()
        },
    );
    assert_eq!(c.call(T0, Outcome::Failure), None);
    let t = c
        .call(T0 + 1, Outcome::Failure)
        .expect("2 failures open it");
    assert_eq!(t.reason, TransitionReason::FailureThreshold);
    // A rate turned on for the agent alone.
    let mut d = Circuit::new();
    configure(
        &mut d.s,
        AgentSettings {
            failure_rate_threshold: Some(0.25),
            minimum_calls: Some(4),
            ..AgentSettings::default()
        },
    );
    for i in 0..3 {
        assert_eq!(d.call(T0 + i, Outcome::Success), None);
    }
    let t = d.call(T0 + 3, Outcome::Failure).expect("1 in 4");
    assert_eq!(t.reason, TransitionReason::FailureRate);
}

#[test]
fn closing_empties_the_window_and_batched_successes_are_calls() {
    let mut c = Circuit::with_config(rate_config());
    let g = c.s.generation;
    let batch = Batch {
        generation: g,
        successes: 30,
        last_success_ms: Some(T0),
        rejections: 0,
    };
    let agent = c.agent.clone();
    flush(&mut c.s, &c.config.clone(), &agent, T0, &batch);
    assert_eq!(c.s.window.counts(&c.config, T0).calls, 30);
    // 10 failures of 40: 25%, closed.
    for i in 0..10 {
        assert_eq!(c.call(T0 + i, Outcome::Failure), None);
    }
    c.reset(T0 + 20);
    assert!(c.s.window.is_empty(), "a transition to closed empties it");
}

#[test]
fn a_success_that_brings_the_window_to_minimum_calls_over_the_rate_trips() {
    let config = BreakerConfig::builder()
        .failure_threshold(1000)
        .failure_rate_threshold(Some(0.5))
        .minimum_calls(4)
        .build()
        .unwrap();
    let mut c = Circuit::with_config(config);
    for i in 0..3 {
        assert_eq!(
            c.call(T0 + i, Outcome::Failure),
            None,
            "under minimum_calls"
        );
    }
    let t = c
        .call(T0 + 3, Outcome::Success)
        .expect("3 of 4 failed: the fourth call, a success, trips it");
    assert_eq!(t.reason, TransitionReason::FailureRate);
}
