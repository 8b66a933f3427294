//! `try_acquire` and `try_success`: the decision and the success the pod
//! makes alone, with no `.await`, and what they leave to the store.

use std::sync::atomic::Ordering;
use std::time::Duration;

use fleet_breaker::{AgentId, CircuitState};

use crate::agent_handle::counting;

fn agent(id: &str) -> AgentId {
    AgentId::new(id).unwrap()
}

#[tokio::test]
async fn a_known_closed_circuit_is_decided_and_counted_with_no_store_operation() {
    let (breaker, ops, _clock) = counting();
    let a = agent("agent-1");
    let handle = breaker.agent(&a);
    assert!(
        breaker.try_acquire(&a).is_none() && handle.try_acquire().is_none(),
        "an agent the pod never asked about is the store's to decide"
    );
    breaker.acquire(&a).await.unwrap().success().await;
    let after_first = ops.load(Ordering::SeqCst);
    for _ in 0..50 {
        let permit = breaker.try_acquire(&a).expect("decided here").unwrap();
        assert!(!permit.is_probe());
        permit.try_success().expect("counted here");
        let permit = handle.try_acquire().expect("decided here").unwrap();
        permit.try_success().expect("counted here");
    }
    assert_eq!(
        ops.load(Ordering::SeqCst),
        after_first,
        "no store operation"
    );
    let s = breaker.snapshot(&a).await.unwrap();
    assert_eq!(s.success_count, 101, "every success counted, exactly");
}

#[tokio::test]
async fn an_open_circuit_is_refused_here_and_a_half_open_one_left_to_the_store() {
    let (breaker, _ops, clock) = counting();
    let a = agent("agent-1");
    let handle = breaker.agent(&a);
    for _ in 0..5 {
        breaker.acquire(&a).await.unwrap().failure("down").await;
    }
    for _ in 0..2 {
        let rejected = breaker.try_acquire(&a).expect("decided here").unwrap_err();
        assert_eq!(rejected.state, CircuitState::Open);
        assert_eq!(rejected.retry_after, Some(Duration::from_millis(1500)));
        let rejected = handle.try_acquire().expect("decided here").unwrap_err();
        assert_eq!(rejected.state, CircuitState::Open);
    }
    assert_eq!(
        breaker.snapshot(&a).await.unwrap().total_rejections,
        4,
        "local rejections are counted"
    );
    clock.advance(Duration::from_millis(1500));
    assert!(
        breaker.try_acquire(&a).is_none() && handle.try_acquire().is_none(),
        "the backoff is over: only the store hands out probes"
    );
    let probe = breaker.acquire(&a).await.unwrap();
    assert!(probe.is_probe());
    assert!(
        breaker.try_acquire(&a).is_none(),
        "half-open: the store decides"
    );
    let probe = probe
        .try_success()
        .expect_err("a probe's success is the store's");
    probe.success().await;
}

#[tokio::test]
async fn a_success_the_store_must_hear_is_handed_back_unsettled() {
    let (breaker, _ops, _clock) = counting();
    let a = agent("agent-1");
    let handle = breaker.agent(&a);
    breaker.acquire(&a).await.unwrap().success().await;
    let permit = breaker.try_acquire(&a).expect("decided here").unwrap();
    let handle_permit = handle.try_acquire().expect("decided here").unwrap();
    // A failure while both calls run: the circuit is still closed, but no
    // longer clean, so a success must reset the streak in the store.
    breaker.acquire(&a).await.unwrap().failure("boom").await;
    assert_eq!(breaker.snapshot(&a).await.unwrap().failure_count, 1);
    let permit = permit
        .try_success()
        .expect_err("the streak needs the store");
    permit.success().await;
    assert_eq!(breaker.snapshot(&a).await.unwrap().failure_count, 0);
    breaker.acquire(&a).await.unwrap().failure("boom").await;
    let handle_permit = handle_permit
        .try_success()
        .expect_err("the streak needs the store");
    assert_eq!(handle_permit.agent(), &a);
    handle_permit.success().await;
    let s = breaker.snapshot(&a).await.unwrap();
    assert_eq!(
        (s.failure_count, s.success_count),
        (0, 1),
        "the success reset the streak (a failure resets the successes)"
    );
}
