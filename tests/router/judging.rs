//! The classifier and the slow-call threshold: what a result says about
//! the agent, and what the router does next.

use std::time::Duration;

use fleet_breaker::router::{FailoverRouter, RouteError};
use fleet_breaker::{CircuitBreaker, Outcome};

use crate::common::{Agents, Behave, breaker, id};

async fn failures(breaker: &CircuitBreaker, agent: &str) -> u64 {
    breaker
        .metrics(&id(agent))
        .await
        .unwrap()
        .metrics
        .failure_count
}

async fn successes(breaker: &CircuitBreaker, agent: &str) -> u64 {
    breaker
        .metrics(&id(agent))
        .await
        .unwrap()
        .metrics
        .success_count
}

#[tokio::test]
async fn by_default_err_is_a_failure_and_ok_a_success() {
    let (breaker, _clock) = breaker(5);
    let router = FailoverRouter::new(breaker.clone());
    let agents = Agents::new(&[("agent-1", Behave::Fail("boom"))]);

    let routed = router
        .route_task("t", ["agent-1", "agent-2"], agents.task_fn(), 1)
        .await
        .unwrap();

    assert_eq!(routed.outcome, Outcome::Success);
    assert_eq!(failures(&breaker, "agent-1").await, 1);
    assert_eq!(successes(&breaker, "agent-2").await, 1);
}

#[tokio::test]
async fn an_error_the_classifier_calls_neutral_is_returned_without_failover_or_charge() {
    let (breaker, _clock) = breaker(5);
    let router = FailoverRouter::builder(breaker.clone())
        .classifier(|result: Result<&String, &String>| match result {
            Ok(_) => Outcome::Success,
            Err(e) if e.starts_with("400") => Outcome::Neutral,
            Err(_) => Outcome::Failure,
        })
        .build()
        .unwrap();
    let agents = Agents::new(&[("agent-1", Behave::Fail("400 bad request"))]);

    let error = router
        .route_task("t", ["agent-1", "agent-2"], agents.task_fn(), 1)
        .await
        .expect_err("the caller's mistake comes back");

    let RouteError::Inner { agent, error, .. } = &error else {
        panic!("expected the call's own error, got {error:?}");
    };
    assert_eq!(
        (agent.as_str(), error.as_str()),
        ("agent-1", "400 bad request")
    );
    assert_eq!(
        agents.calls(),
        ["agent-1"],
        "a neutral error is not tried elsewhere"
    );
    assert_eq!(
        failures(&breaker, "agent-1").await,
        0,
        "the agent is not charged"
    );
    assert!(router.recent_failures(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_ok_result_the_classifier_calls_a_failure_fails_over() {
    let (breaker, _clock) = breaker(5);
    let router = FailoverRouter::builder(breaker.clone())
        .classifier(|result: Result<&String, &String>| match result {
            Ok(body) if body.starts_with("agent-1") => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        })
        .build()
        .unwrap();
    let agents = Agents::default();

    let routed = router
        .route_task("t", ["agent-1", "agent-2"], agents.task_fn(), 1)
        .await
        .unwrap();

    assert_eq!(routed.agent, id("agent-2"));
    assert_eq!(agents.calls(), ["agent-1", "agent-2"]);
    assert_eq!(failures(&breaker, "agent-1").await, 1);
    let journal = router.recent_failures(10).await.unwrap();
    assert_eq!(
        journal[0].reason,
        "the classifier counted the result as a failure"
    );
}

#[tokio::test]
async fn an_ok_result_the_classifier_calls_neutral_is_served_and_not_counted() {
    let (breaker, _clock) = breaker(5);
    let router = FailoverRouter::builder(breaker.clone())
        .classifier(|_: Result<&String, &String>| Outcome::Neutral)
        .build()
        .unwrap();
    let agents = Agents::default();

    let routed = router
        .route_task("t", ["agent-1"], agents.task_fn(), 1)
        .await
        .unwrap();

    assert_eq!(routed.outcome, Outcome::Neutral);
    assert_eq!(successes(&breaker, "agent-1").await, 0);
    assert_eq!(failures(&breaker, "agent-1").await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_success_slower_than_the_threshold_is_served_but_charged_as_a_failure() {
    let (breaker, _clock) = breaker(5);
    let router = FailoverRouter::builder(breaker.clone())
        .slow_call_threshold(Duration::from_secs(1))
        .build()
        .unwrap();
    let agents = Agents::new(&[
        ("agent-1", Behave::Slow(Duration::from_secs(2))),
        ("agent-2", Behave::Slow(Duration::from_millis(500))),
    ]);

    let slow = router
        .route_task("slow", ["agent-1"], agents.task_fn(), 1)
        .await
        .unwrap();
    let fast = router
        .route_task("fast", ["agent-2"], agents.task_fn(), 2)
        .await
        .unwrap();

    assert_eq!(
        slow.value, "agent-1 did 1",
        "the slow answer is still returned"
    );
    assert_eq!(slow.outcome, Outcome::Failure);
    assert_eq!(failures(&breaker, "agent-1").await, 1);
    assert_eq!(fast.outcome, Outcome::Success);
    assert_eq!(failures(&breaker, "agent-2").await, 0);
    let journal = router.recent_failures(10).await.unwrap();
    assert_eq!(journal.len(), 1);
    assert!(
        journal[0]
            .reason
            .starts_with("slow call: took 2s, over the 1s threshold"),
        "{}",
        journal[0].reason
    );
}

/// A classifier that reads a 429's retry-after from the error text.
struct RetryAfterClassifier;

impl fleet_breaker::router::Classify<String, String> for RetryAfterClassifier {
    fn classify(&self, result: Result<&String, &String>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }

    fn retry_after(&self, result: Result<&String, &String>) -> Option<Duration> {
        let seconds = result.err()?.strip_prefix("429 retry-after ")?;
        seconds.parse().ok().map(Duration::from_secs)
    }
}

#[tokio::test]
async fn a_retry_after_from_the_classifier_opens_the_agent_at_once_for_that_long() {
    let (breaker, _clock) = breaker(5);
    let router = FailoverRouter::builder(breaker.clone())
        .classifier(RetryAfterClassifier)
        .build()
        .unwrap();
    let agents = Agents::new(&[("agent-1", Behave::Fail("429 retry-after 20"))]);

    let routed = router
        .route_task("t", ["agent-1", "agent-2"], agents.task_fn(), 1)
        .await
        .unwrap();

    assert_eq!(routed.agent.as_str(), "agent-2", "failed over");
    let metrics = breaker.metrics(&id("agent-1")).await.unwrap();
    assert_eq!(
        metrics.state,
        fleet_breaker::CircuitState::Open,
        "one failure, not five"
    );
    let left = metrics
        .retry_after_seconds
        .expect("open until the retry-after");
    assert!((19.9..=20.0).contains(&left), "{left}");
}

#[tokio::test(start_paused = true)]
async fn slow_calls_feed_the_slow_call_rate_policy() {
    let (breaker, _clock) = crate::common::breaker_with(
        fleet_breaker::BreakerConfig::builder()
            .slow_call_duration(Some(Duration::from_millis(100)))
            .slow_call_rate_threshold(Some(0.5))
            .minimum_calls(2),
    );
    let router = FailoverRouter::new(breaker.clone());
    let agents = Agents::new(&[("agent-1", Behave::Slow(Duration::from_millis(150)))]);
    for task in ["t1", "t2"] {
        let routed = router
            .route_task(task, ["agent-1"], agents.task_fn(), 1)
            .await
            .unwrap();
        assert_eq!(
            routed.outcome,
            Outcome::Success,
            "a slow success is a success"
        );
    }
    let metrics = breaker.metrics(&id("agent-1")).await.unwrap();
    assert_eq!(metrics.state, fleet_breaker::CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn with_the_slow_call_rate_on_the_routers_threshold_feeds_it_instead_of_failing_calls() {
    let (breaker, _clock) = crate::common::breaker_with(
        fleet_breaker::BreakerConfig::builder()
            .failure_threshold(1)
            .slow_call_duration(Some(Duration::from_secs(10)))
            .slow_call_rate_threshold(Some(1.0))
            .minimum_calls(2),
    );
    let router = FailoverRouter::builder(breaker.clone())
        .slow_call_threshold(Duration::from_millis(100))
        .build()
        .unwrap();
    let agents = Agents::new(&[("agent-1", Behave::Slow(Duration::from_millis(150)))]);
    let routed = router
        .route_task("t1", ["agent-1"], agents.task_fn(), 1)
        .await
        .unwrap();
    assert_eq!(
        routed.outcome,
        Outcome::Success,
        "not a failure: threshold 1 would open"
    );
    assert_eq!(failures(&breaker, "agent-1").await, 0);
    router
        .route_task("t2", ["agent-1"], agents.task_fn(), 1)
        .await
        .unwrap();
    let metrics = breaker.metrics(&id("agent-1")).await.unwrap();
    assert_eq!(
        metrics.state,
        fleet_breaker::CircuitState::Open,
        "2 slow calls of 2"
    );
}
