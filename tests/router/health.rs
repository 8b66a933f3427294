//! `health_status` in the original shape, `recent_failures`, `reset_agent`,
//! the routing-event counter and the builder's checks, on the embedded store.

use std::time::Duration;

use fleet_breaker::router::FailoverRouter;
use fleet_breaker::{BreakerError, CircuitState};

use crate::common::{Agents, Behave, breaker, id, trip};
use crate::support::wait_until;

#[tokio::test]
async fn health_status_has_the_original_shape() {
    let (breaker, _clock) = breaker(1);
    let router = FailoverRouter::new(breaker);
    let agents = Agents::new(&[("agent-1", Behave::Fail("down"))]);
    for task in 0..4 {
        let task_id = format!("task-{task}");
        let list = ["agent-1", "agent-2", "agent-3"];
        router
            .route_task(&task_id, list, agents.task_fn(), task)
            .await
            .unwrap();
    }

    let health = router.health_status().await.unwrap();
    let json = serde_json::to_value(&health).unwrap();

    assert_eq!(
        json["total_agents"], 3,
        "agent-3 was named, never called: {json}"
    );
    assert_eq!(json["open_circuits"], 1);
    assert_eq!(json["half_open_circuits"], 0);
    assert_eq!(json["healthy_agents"], 2);
    assert_eq!(json["routing_events"], 4);
    assert_eq!(json["agents"]["agent-1"]["state"], "open");
    assert_eq!(json["agents"]["agent-1"]["metrics"]["failure_count"], 1);
    assert_eq!(json["agents"]["agent-1"]["metrics"]["total_rejections"], 3);
    assert_eq!(json["agents"]["agent-2"]["metrics"]["success_count"], 4);
    assert_eq!(json["agents"]["agent-3"]["state"], "closed");
    assert_eq!(json["agents"]["agent-3"]["metrics"]["success_count"], 0);
}

#[tokio::test]
async fn forced_states_count_as_open_and_healthy() {
    let (breaker, _clock) = breaker(5);
    for agent in ["agent-1", "agent-2"] {
        breaker.acquire(&id(agent)).await.unwrap().success().await;
    }
    breaker
        .force(&id("agent-1"), fleet_breaker::ForceMode::Open, None)
        .await
        .unwrap();
    breaker
        .force(&id("agent-2"), fleet_breaker::ForceMode::Closed, None)
        .await
        .unwrap();
    let router = FailoverRouter::new(breaker);

    let health = router.health_status().await.unwrap();

    assert_eq!((health.open_circuits, health.healthy_agents), (1, 1));
    assert_eq!(
        health.agents[&id("agent-1")].state,
        CircuitState::ForcedOpen
    );
}

#[tokio::test]
async fn recent_failures_are_newest_first_capped_and_say_who_saw_them() {
    let (breaker, _clock) = breaker(100);
    let router = FailoverRouter::builder(breaker)
        .failures_cap(3)
        .build()
        .unwrap();
    let agents = Agents::new(&[("agent-1", Behave::Fail("refused"))]);
    for task in 0..5 {
        let task_id = format!("task-{task}");
        router
            .route_task(&task_id, ["agent-1", "agent-2"], agents.task_fn(), task)
            .await
            .unwrap();
    }

    let all = router.recent_failures(10).await.unwrap();
    let tasks: Vec<_> = all.iter().map(|f| f.task_id.as_str()).collect();
    assert_eq!(tasks, ["task-4", "task-3", "task-2"]);
    assert_eq!(all[0].agent_id, id("agent-1"));
    assert_eq!(all[0].reason, "refused");
    assert_eq!(all[0].instance_id, "pod-test");
    assert!(all[0].time().ends_with('Z'), "{}", all[0].time());
    assert_eq!(router.recent_failures(2).await.unwrap().len(), 2);
    assert!(router.recent_failures(0).await.unwrap().is_empty());
}

#[tokio::test]
async fn reset_agent_closes_the_circuit_for_the_next_route() {
    let (breaker, _clock) = breaker(1);
    trip(&breaker, "agent-1").await;
    let router = FailoverRouter::new(breaker);
    let agents = Agents::default();

    let transition = router.reset_agent("agent-1").await.unwrap();
    let routed = router
        .route_task("t", ["agent-1", "agent-2"], agents.task_fn(), 1)
        .await
        .unwrap();

    assert_eq!(
        (transition.from, transition.to),
        (CircuitState::Open, CircuitState::Closed)
    );
    assert_eq!(routed.agent, id("agent-1"));
    assert!(matches!(
        router.reset_agent("no such agent").await,
        Err(BreakerError::InvalidAgentId(_))
    ));
    assert!(
        router
            .reset_agent("agent-9")
            .await
            .unwrap_err()
            .is_unknown_agent()
    );
}

#[tokio::test(start_paused = true)]
async fn routing_events_reach_the_store_within_one_flush_interval() {
    let (breaker, _clock) = breaker(5);
    let router = FailoverRouter::builder(breaker.clone())
        .flush_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    let agents = Agents::default();
    for task in 0..3 {
        router
            .route_task("t", ["agent-1"], agents.task_fn(), task)
            .await
            .unwrap();
    }
    assert_eq!(
        breaker
            .store()
            .journal()
            .unwrap()
            .routing_events()
            .await
            .unwrap(),
        0,
        "counted locally first"
    );

    // Tokio time is paused: the wait advances it, 10 ms a poll, until the
    // flusher has written the events; how far it moved is the delay.
    let counted_at = tokio::time::Instant::now();
    wait_until(
        "the routing events reach the store",
        Duration::from_secs(5),
        || async {
            let journal = breaker
                .store()
                .journal()
                .expect("a memory store keeps a journal");
            journal.routing_events().await.unwrap() == 3
        },
    )
    .await;
    let delay = counted_at.elapsed();
    assert!(
        delay <= Duration::from_millis(1100),
        "flushed {delay:?} after the routes, more than one 1 s flush interval (plus 100 ms)"
    );
    assert_eq!(router.health_status().await.unwrap().routing_events, 3);
}

#[tokio::test]
async fn the_builder_refuses_nonsense_with_a_clear_message() {
    let (breaker, _clock) = breaker(5);
    let b = || FailoverRouter::builder(breaker.clone());
    let cases = [
        (b().max_retries(0).build().unwrap_err(), "max_retries"),
        (
            b().attempt_timeout(Duration::ZERO).build().unwrap_err(),
            "attempt_timeout",
        ),
        (
            b().slow_call_threshold(Duration::ZERO).build().unwrap_err(),
            "slow_call_threshold",
        ),
        (b().failures_cap(0).build().unwrap_err(), "failures_cap"),
        (
            b().flush_interval(Duration::ZERO).build().unwrap_err(),
            "flush_interval",
        ),
        (
            b().attempt_timeout(Duration::from_secs(1))
                .slow_call_threshold(Duration::from_secs(2))
                .build()
                .unwrap_err(),
            "slow_call_threshold",
        ),
    ];
    for (error, field) in cases {
        assert_eq!(error.field, field);
        assert!(
            error
                .to_string()
                .starts_with(&format!("invalid router config: `{field}` is "))
        );
    }
    assert_eq!(
        b().max_retries(0).build().unwrap_err().to_string(),
        "invalid router config: `max_retries` is 0, but it must be at least 1"
    );
}
