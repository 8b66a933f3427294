//! Priority order, skipping, `max_retries`, what `AllAgentsFailed` carries,
//! and bad agent lists.

use std::time::Duration;

use fleet_breaker::router::{Attempt, FailoverRouter, RouteError};
use fleet_breaker::{AgentId, CircuitState, RejectCause};

use crate::common::{Agents, Behave, breaker, id, trip};

#[tokio::test]
async fn agents_are_tried_in_priority_order_until_one_serves() {
    let (breaker, _clock) = breaker(5);
    let router = FailoverRouter::new(breaker);
    let agents = Agents::new(&[("agent-1", Behave::Fail("connection refused"))]);

    let routed = router
        .route_task(
            "task-1",
            ["agent-1", "agent-2", "agent-3"],
            agents.task_fn(),
            7,
        )
        .await
        .expect("agent-2 serves");

    assert_eq!(routed.value, "agent-2 did 7");
    assert_eq!(routed.agent, id("agent-2"));
    assert_eq!(routed.attempts, 2);
    assert_eq!(agents.calls(), ["agent-1", "agent-2"]);
    assert_eq!(routed.history.len(), 1);
    assert_eq!(routed.history[0].agent, id("agent-1"));
    assert_eq!(
        routed.history[0].attempt,
        Attempt::Failed {
            reason: "connection refused".into()
        }
    );
    assert!(!routed.panic_mode);
}

#[tokio::test]
async fn a_rejected_agent_is_skipped_without_a_call_and_is_not_an_attempt() {
    let (breaker, _clock) = breaker(1);
    trip(&breaker, "agent-1").await;
    // One call allowed: if the rejection counted, agent-2 would not be reached.
    let router = FailoverRouter::builder(breaker)
        .max_retries(1)
        .build()
        .unwrap();
    let agents = Agents::default();

    let routed = router
        .route_task("task-1", ["agent-1", "agent-2"], agents.task_fn(), 1)
        .await
        .expect("agent-2 serves");

    assert_eq!(routed.agent, id("agent-2"));
    assert_eq!(routed.attempts, 1);
    assert_eq!(agents.calls(), ["agent-2"], "agent-1 is never called");
    assert_eq!(
        routed.history[0].attempt,
        Attempt::Rejected {
            state: CircuitState::Open,
            retry_after: Some(Duration::from_millis(1500)),
            cause: RejectCause::Circuit,
        }
    );
}

#[tokio::test]
async fn at_most_max_retries_calls_are_made_and_the_rest_are_not_tried() {
    let (breaker, _clock) = breaker(5);
    let router = FailoverRouter::builder(breaker)
        .max_retries(3)
        .build()
        .unwrap();
    let names = ["a-1", "a-2", "a-3", "a-4", "a-5"];
    let agents = Agents::new(&names.map(|n| (n, Behave::Fail("down"))));

    let error = router
        .route_task("task-1", names, agents.task_fn(), 1)
        .await
        .expect_err("every agent fails");

    assert_eq!(agents.calls(), ["a-1", "a-2", "a-3"]);
    let failed = error.all_agents_failed().expect("AllAgentsFailed");
    assert_eq!(failed.calls, 3);
    let attempts: Vec<_> = failed.agents.iter().map(|r| r.attempt.clone()).collect();
    let down = Attempt::Failed {
        reason: "down".into(),
    };
    assert_eq!(
        attempts,
        [
            down.clone(),
            down.clone(),
            down,
            Attempt::NotTried,
            Attempt::NotTried
        ]
    );
    // Untried agents were not even asked: nothing was counted against them.
    let store_agents = router.breaker().agents().await.unwrap();
    assert!(!store_agents.contains(&id("a-4")));
}

#[tokio::test(start_paused = true)]
async fn all_agents_failed_says_what_happened_to_each_agent_on_one_line() {
    let (breaker, _clock) = breaker(1);
    trip(&breaker, "agent-1").await;
    let router = FailoverRouter::builder(breaker)
        .max_retries(2)
        .attempt_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let agents = Agents::new(&[
        ("agent-2", Behave::Fail("connection\nrefused")),
        ("agent-3", Behave::Hang),
    ]);

    let error = router
        .route_task(
            "task-7",
            ["agent-1", "agent-2", "agent-3", "agent-4"],
            agents.task_fn(),
            1,
        )
        .await
        .expect_err("no agent serves");

    let RouteError::AllAgentsFailed(failed) = &error else {
        panic!("expected AllAgentsFailed, got {error:?}");
    };
    assert_eq!(failed.task_id, "task-7");
    assert_eq!(failed.calls, 2);
    assert!(!failed.panic_mode && !failed.all_rejected());
    assert!(matches!(
        failed.attempt("agent-1"),
        Some(Attempt::Rejected {
            state: CircuitState::Open,
            ..
        })
    ));
    assert_eq!(
        failed.attempt("agent-3"),
        Some(&Attempt::TimedOut {
            after: Duration::from_secs(2)
        })
    );
    assert_eq!(failed.attempt("agent-4"), Some(&Attempt::NotTried));
    assert_eq!(
        error.to_string(),
        "all 4 agents failed for task \"task-7\" (2 calls): agent-1 rejected (open, retry after 1.500s); \
         agent-2 failed: connection refused; agent-3 timed out after 2s; agent-4 not tried (max_retries reached)"
    );
    assert!(!error.to_string().contains('\n'));
}

#[tokio::test]
async fn agent_lists_take_strings_and_agent_ids() {
    let (breaker, _clock) = breaker(5);
    let router = FailoverRouter::new(breaker);
    let agents = Agents::default();
    let owned: Vec<String> = vec!["agent-1".into(), "agent-2".into()];
    let ids: Vec<AgentId> = vec![id("agent-2"), id("agent-1")];

    let a = router
        .route_task("t1", owned, agents.task_fn(), 1)
        .await
        .unwrap();
    let b = router
        .route_task("t2", &ids, agents.task_fn(), 2)
        .await
        .unwrap();
    let c = router
        .route_task("t3", ids, agents.task_fn(), 3)
        .await
        .unwrap();

    assert_eq!(
        [a.agent, b.agent, c.agent],
        [id("agent-1"), id("agent-2"), id("agent-2")]
    );
}

/// The router, the agents it would call, and the error for a bad list.
async fn refuse(list: Vec<&str>) -> (RouteError<String>, Agents, FailoverRouter) {
    let (breaker, _clock) = breaker(5);
    let router = FailoverRouter::new(breaker);
    let agents = Agents::default();
    let error = router
        .route_task("task-9", list, agents.task_fn(), 1)
        .await
        .expect_err("a bad list is refused");
    (error, agents, router)
}

async fn assert_nothing_happened(agents: &Agents, router: &FailoverRouter) {
    assert!(agents.calls().is_empty(), "no call is made");
    assert!(
        router.breaker().agents().await.unwrap().is_empty(),
        "no permit is asked"
    );
    let health = router.health_status().await.unwrap();
    assert_eq!(
        health.routing_events, 0,
        "a refused list is no routing decision"
    );
}

#[tokio::test]
async fn an_empty_agent_list_is_refused_before_any_call() {
    let (error, agents, router) = refuse(vec![]).await;
    assert!(matches!(error, RouteError::NoAgents { .. }), "{error:?}");
    assert!(error.is_invalid_input());
    assert_eq!(
        error.to_string(),
        "task \"task-9\": the agent list is empty; pass at least one agent id"
    );
    assert_nothing_happened(&agents, &router).await;
}

#[tokio::test]
async fn a_repeated_agent_is_refused_before_any_call() {
    let (error, agents, router) = refuse(vec!["agent-1", "agent-2", "agent-1"]).await;
    let RouteError::DuplicateAgent {
        agent,
        first,
        second,
        ..
    } = &error
    else {
        panic!("expected DuplicateAgent, got {error:?}");
    };
    assert_eq!((agent.as_str(), *first, *second), ("agent-1", 0, 2));
    assert!(error.is_invalid_input());
    assert!(
        error
            .to_string()
            .contains("agent-1 appears twice in the list (positions 0 and 2)")
    );
    assert_nothing_happened(&agents, &router).await;
}

#[tokio::test]
async fn an_invalid_agent_id_is_refused_before_any_call_even_after_valid_ones() {
    let (error, agents, router) = refuse(vec!["agent-1", "bad {agent}"]).await;
    let RouteError::InvalidAgentId { input, index, .. } = &error else {
        panic!("expected InvalidAgentId, got {error:?}");
    };
    assert_eq!((input.as_str(), *index), ("bad {agent}", 1));
    assert!(error.is_invalid_input());
    assert!(
        error.to_string().starts_with("task \"task-9\": agent \"bad {agent}\" at position 1 is invalid: agent id has ' ' at byte 3"),
        "{error}"
    );
    assert_nothing_happened(&agents, &router).await;
}
