use std::sync::Arc;
use std::time::Duration;

use super::{Cache, Cached};
use crate::agent_id::AgentId;
use crate::clock::ManualClock;
use crate::config::BreakerConfig;
use crate::model::{Batch, CircuitState, Snapshot, Transition, TransitionReason};

const T0: u64 = 1_700_000_000_000;

fn setup() -> (Cache, ManualClock, AgentId) {
    let clock = ManualClock::new(T0);
    let cache = Cache::new(Duration::from_secs(1), Arc::new(clock.clone()));
    cache.confirm_subscription();
    (cache, clock, AgentId::new("agent-1").unwrap())
}

fn snapshot(state: CircuitState, generation: u64) -> Snapshot {
    Snapshot {
        state,
        generation,
        ..Snapshot::fresh(&BreakerConfig::default())
    }
}

fn transition(
    agent: &AgentId,
    to: CircuitState,
    generation: u64,
    open_until_ms: u64,
) -> Transition {
    Transition {
        agent_id: agent.clone(),
        from: CircuitState::Closed,
        to,
        generation,
        at_ms: T0,
        reason: TransitionReason::FailureThreshold,
        backoff_seconds: 1.5,
        open_until_ms,
        epoch: 0,
    }
}

#[test]
fn nothing_is_decided_locally_without_the_subscription() {
    let (cache, _clock, agent) = setup();
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 0), T0);
    assert!(matches!(
        cache.decide(&agent),
        Cached::Admit { generation: 0, .. }
    ));
    cache.lose_subscription();
    assert_eq!(cache.decide(&agent), Cached::Ask);
}

#[test]
fn an_unknown_agent_goes_to_the_store() {
    let (cache, _clock, agent) = setup();
    assert_eq!(cache.decide(&agent), Cached::Ask);
    assert_eq!(cache.stats().misses, 1);
}

#[test]
fn a_closed_entry_stays_trusted_while_the_subscription_stays_up() {
    let (cache, clock, agent) = setup();
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 3), T0);
    // Ten seconds of heartbeats, no store answer: the subscription that
    // stayed up delivered every transition, so the entry needs no refresh.
    for _ in 0..20 {
        clock.advance(Duration::from_millis(500));
        cache.confirm_subscription();
    }
    assert!(matches!(
        cache.decide(&agent),
        Cached::Admit { generation: 3, .. }
    ));
    assert!(cache.count_success(&agent, None, 3));
    assert_eq!(cache.stats(), super::CacheStats { hits: 1, misses: 0 });
}

#[test]
fn an_entry_confirmed_before_a_lost_subscription_waits_for_the_store_after_it() {
    let (cache, _clock, agent) = setup();
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 3), T0);
    cache.lose_subscription();
    cache.confirm_subscription();
    assert_eq!(
        cache.decide(&agent),
        Cached::Ask,
        "transitions may have been missed while the subscription was down"
    );
    assert!(!cache.count_success(&agent, None, 3));
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 3), T0);
    assert!(matches!(
        cache.decide(&agent),
        Cached::Admit { generation: 3, .. }
    ));
}

#[test]
fn an_open_entry_rejects_until_open_until_in_store_time() {
    let (cache, clock, agent) = setup();
    // The store's clock runs 10 s ahead of ours.
    let store_now = T0 + 10_000;
    let mut open = snapshot(CircuitState::Open, 1);
    open.open_until_ms = store_now + 500;
    cache.apply_snapshot(&agent, &open, store_now);
    assert_eq!(
        cache.decide(&agent),
        Cached::Reject {
            state: CircuitState::Open,
            retry_after_ms: Some(500)
        }
    );
    clock.advance(Duration::from_millis(500));
    assert_eq!(
        cache.decide(&agent),
        Cached::Ask,
        "the backoff elapsed: the store decides"
    );
    let drained = cache.drain();
    assert_eq!(drained.len(), 1);
    assert_eq!(
        drained[0].1.rejections, 1,
        "the local rejection is counted for the store"
    );
    assert!(cache.drain().is_empty(), "drained once");
}

#[test]
fn half_open_always_goes_to_the_store() {
    let (cache, _clock, agent) = setup();
    cache.apply_snapshot(&agent, &snapshot(CircuitState::HalfOpen, 2), T0);
    assert_eq!(cache.decide(&agent), Cached::Ask);
}

#[test]
fn an_old_event_does_not_move_the_entry_back() {
    let (cache, _clock, agent) = setup();
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 4), T0);
    cache.apply_transition(&transition(&agent, CircuitState::Open, 3, T0 + 1_000));
    assert_eq!(cache.state(&agent), Some(CircuitState::Closed));
    cache.apply_transition(&transition(&agent, CircuitState::Open, 4, T0 + 1_000));
    assert_eq!(
        cache.state(&agent),
        Some(CircuitState::Closed),
        "same generation is old news"
    );
    cache.apply_transition(&transition(&agent, CircuitState::Open, 5, T0 + 1_000));
    assert_eq!(
        (cache.state(&agent), cache.generation(&agent)),
        (Some(CircuitState::Open), Some(5))
    );
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 4), T0);
    assert_eq!(
        cache.generation(&agent),
        Some(5),
        "an older snapshot is ignored too"
    );
}

#[test]
fn a_transition_event_alone_lets_a_pod_reject_locally() {
    let (cache, _clock, agent) = setup();
    cache.apply_transition(&transition(&agent, CircuitState::Open, 1, T0 + 1_500));
    assert!(matches!(cache.decide(&agent), Cached::Reject { .. }));
}

#[test]
fn a_forced_closed_event_is_confirmed_with_the_store_first() {
    let (cache, _clock, agent) = setup();
    cache.apply_transition(&transition(&agent, CircuitState::ForcedClosed, 1, 0));
    assert_eq!(cache.decide(&agent), Cached::Ask);
}

#[test]
fn successes_are_counted_locally_only_on_a_clean_closed_circuit_of_the_same_generation() {
    let (cache, clock, agent) = setup();
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 2), T0);
    assert!(cache.count_success(&agent, None, 2));
    assert!(
        !cache.count_success(&agent, None, 1),
        "a permit of another generation"
    );
    cache.apply_failure_count(&agent, 2, 1);
    assert!(
        !cache.count_success(&agent, None, 2),
        "the fleet has a failure streak: the store must see it"
    );
    cache.apply_failure_count(&agent, 2, 0);
    clock.advance(Duration::from_millis(5));
    assert!(cache.count_success(&agent, None, 2));
    let drained = cache.drain();
    assert_eq!(
        drained,
        vec![(
            agent,
            Batch {
                generation: 2,
                successes: 2,
                last_success_ms: Some(T0 + 5),
                rejections: 0
            }
        )]
    );
}

#[test]
fn news_of_a_newer_generation_distrusts_the_entry() {
    let (cache, _clock, agent) = setup();
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 2), T0);
    cache.apply_failure_count(&agent, 3, 1);
    assert_eq!(cache.decide(&agent), Cached::Ask);
}

#[test]
fn due_sends_rejections_after_flush_interval_and_clean_successes_after_theirs() {
    let (cache, clock, agent) = setup();
    let other = AgentId::new("agent-2").unwrap();
    let (flush, successes) = (Duration::from_secs(1), Duration::from_secs(10));
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 0), T0);
    let mut open = snapshot(CircuitState::Open, 1);
    open.open_until_ms = T0 + 60_000;
    cache.apply_snapshot(&other, &open, T0);
    assert!(cache.count_success(&agent, None, 0));
    assert!(matches!(cache.decide(&other), Cached::Reject { .. }));
    clock.advance(Duration::from_secs(1));
    cache.confirm_subscription();
    let due = cache.due(flush, successes, successes);
    assert_eq!(due.len(), 1, "only the rejections are due after 1 s");
    assert_eq!((&due[0].0, due[0].1.rejections), (&other, 1));
    clock.advance(Duration::from_secs(9));
    cache.confirm_subscription();
    let due = cache.due(flush, successes, successes);
    assert_eq!(due.len(), 1, "the successes are due after 10 s");
    assert_eq!((&due[0].0, due[0].1.successes), (&agent, 1));
    assert!(
        cache.due(flush, successes, successes).is_empty(),
        "nothing to send"
    );
}

#[test]
fn the_successes_of_an_agent_whose_window_holds_failures_flush_every_window_interval() {
    let (cache, clock, agent) = setup();
    let (flush, successes, window) = (
        Duration::from_secs(1),
        Duration::from_secs(10),
        Duration::from_millis(500),
    );
    let mut hot = snapshot(CircuitState::Closed, 0);
    hot.window.buckets.push(crate::model::Bucket {
        index: 1,
        calls: 3,
        failures: 1,
        slow: 0,
    });
    cache.apply_snapshot(&agent, &hot, T0);
    assert!(cache.count_success(&agent, None, 0));
    clock.advance(Duration::from_millis(500));
    cache.confirm_subscription();
    let due = cache.due(flush, successes, window);
    assert_eq!(
        due.len(),
        1,
        "a rate decision divides by them: sent in 500 ms"
    );
    // A clean window again: back to the success interval.
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 0), T0);
    assert!(cache.count_success(&agent, None, 0));
    clock.advance(Duration::from_millis(500));
    cache.confirm_subscription();
    assert!(cache.due(flush, successes, window).is_empty());
    // News that the fleet's failure count left zero makes it hot at once.
    cache.apply_failure_count(&agent, 0, 1);
    cache.apply_failure_count(&agent, 0, 0);
    assert_eq!(cache.due(flush, successes, window).len(), 1);
}

#[test]
fn counts_wait_for_their_flush_interval_and_a_failed_flush_puts_them_back() {
    let (cache, clock, agent) = setup();
    let flush = Duration::from_secs(1);
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 0), T0);
    assert!(cache.count_success(&agent, None, 0));
    assert!(
        cache.due(flush, flush, flush).is_empty(),
        "counted just now"
    );
    clock.advance(Duration::from_secs(1));
    cache.confirm_subscription();
    let due = cache.due(flush, flush, flush);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1.successes, 1);
    cache.restore(&agent, &due[0].1);
    assert_eq!(cache.drain()[0].1.successes, 1, "nothing lost");
}

#[test]
fn a_silent_subscription_stops_being_trusted_after_max_staleness() {
    let (cache, clock, agent) = setup();
    clock.advance(Duration::from_millis(600));
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 0), T0 + 600);
    assert!(matches!(cache.decide(&agent), Cached::Admit { .. }));
    clock.advance(Duration::from_millis(400));
    assert!(
        !cache.is_subscribed(),
        "no message nor ping for max_staleness"
    );
    assert_eq!(
        cache.decide(&agent),
        Cached::Ask,
        "even though the entry itself is fresh"
    );
}

#[test]
fn a_snapshot_of_a_new_epoch_replaces_an_entry_of_a_higher_generation() {
    let (cache, _clock, agent) = setup();
    let mut old = snapshot(CircuitState::ForcedOpen, 13);
    old.epoch = 1;
    cache.apply_snapshot(&agent, &old, T0);
    // The agent was deleted (or Redis flushed) and made again.
    let mut new = snapshot(CircuitState::Closed, 0);
    new.epoch = 2;
    cache.apply_snapshot(&agent, &new, T0);
    assert_eq!(cache.generation(&agent), Some(0));
    assert!(matches!(
        cache.decide(&agent),
        Cached::Admit { generation: 0, .. }
    ));
    // And it moves on in the new epoch.
    let mut opened = transition(&agent, CircuitState::Open, 1, T0 + 1_500);
    opened.epoch = 2;
    cache.apply_transition(&opened);
    assert_eq!(cache.state(&agent), Some(CircuitState::Open));
}

#[test]
fn a_transition_of_another_epoch_moves_nothing_and_sends_the_next_decision_to_the_store() {
    let (cache, _clock, agent) = setup();
    let mut closed = snapshot(CircuitState::Closed, 3);
    closed.epoch = 1;
    cache.apply_snapshot(&agent, &closed, T0);
    let mut forged = transition(&agent, CircuitState::Open, u64::MAX, T0 + 60_000);
    forged.epoch = 9;
    cache.apply_transition(&forged);
    assert_eq!(cache.generation(&agent), Some(3));
    assert_eq!(cache.state(&agent), Some(CircuitState::Closed));
    assert_eq!(cache.decide(&agent), Cached::Ask);
    // A message without an epoch is taken as of the entry's.
    cache.apply_snapshot(&agent, &closed, T0);
    cache.apply_transition(&transition(&agent, CircuitState::Open, 4, T0 + 1_500));
    assert_eq!(cache.generation(&agent), Some(4));
}

#[test]
fn a_forgotten_entry_is_blanked_in_place_so_its_handle_stays_valid() {
    let (cache, _clock, agent) = setup();
    let handle = cache.entry_ref(&agent);
    assert_eq!(
        cache.decide_entry(&handle),
        super::Judged::Ask,
        "no news yet"
    );
    assert!(cache.agents().is_empty(), "a handle alone makes no agent");
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 7), T0);
    assert_eq!(cache.decide_entry(&handle), super::Judged::Admit(7));
    assert!(cache.count_success_entry(&handle, 7));
    cache.clear();
    assert_eq!(cache.decide_entry(&handle), super::Judged::Ask);
    assert!(cache.agents().is_empty());
    assert!(cache.drain().is_empty(), "its counts went with it");
    // The store started again: a lower generation is the news now.
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 1), T0);
    assert_eq!(cache.decide_entry(&handle), super::Judged::Admit(1));
    assert_eq!(cache.agents(), vec![agent.clone()]);
    cache.forget(&agent);
    assert_eq!(cache.generation(&agent), None);
    cache.apply_transition(&transition(&agent, CircuitState::Open, 1, T0 + 1_000));
    assert!(matches!(
        cache.decide_entry(&handle),
        super::Judged::Reject { .. }
    ));
}

#[test]
fn counts_from_many_threads_add_up_in_one_batch() {
    let (cache, _clock, agent) = setup();
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 2), T0);
    let handle = cache.entry_ref(&agent);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..1_000 {
                    assert!(cache.count_success_entry(&handle, 2));
                }
            });
        }
    });
    let drained = cache.drain();
    assert_eq!(drained.len(), 1);
    assert_eq!(drained[0].1.successes, 4_000);
    assert_eq!(drained[0].1.last_success_ms, Some(T0));
    assert_eq!(cache.stats().hits, 4_000);
}

#[test]
fn an_authoritative_cache_is_trusted_from_the_start_and_never_ages() {
    let clock = ManualClock::new(T0);
    let cache = Cache::authoritative(Arc::new(clock.clone()));
    let agent = AgentId::new("agent-1").unwrap();
    cache.apply_snapshot(&agent, &snapshot(CircuitState::Closed, 0), T0);
    clock.advance(Duration::from_secs(3600));
    assert!(matches!(cache.decide(&agent), Cached::Admit { .. }));
    let mut open = snapshot(CircuitState::Open, 1);
    open.open_until_ms = T0 + 3_600_500;
    // The store's own answer, read an instant "late": no offset is taken.
    cache.apply_snapshot(&agent, &open, T0);
    assert_eq!(
        cache.decide(&agent),
        Cached::Reject {
            state: CircuitState::Open,
            retry_after_ms: Some(500)
        }
    );
    assert_eq!(cache.take(&agent).map(|b| b.rejections), Some(1));
    assert_eq!(cache.take(&agent), None, "taken once");
}
