//! The tower middleware (feature `tower`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fleet_breaker::router::FailoverRouter;
use fleet_breaker::router::tower::{CircuitBreakerLayer, CircuitBreakerService, FailoverService};
use fleet_breaker::{AgentId, CallError, CircuitState};
use tower::{Layer, ServiceExt, service_fn};

use crate::common::{breaker, id};

#[tokio::test]
async fn the_layer_passes_calls_through_and_rejects_once_the_circuit_opens() {
    let (breaker, _clock) = breaker(2);
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let inner = service_fn(move |fail: bool| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { if fail { Err("agent down") } else { Ok("done") } }
    });
    let service = CircuitBreakerLayer::new(breaker, id("agent-1")).layer(inner);

    assert_eq!(service.clone().oneshot(false).await.unwrap(), "done");
    for _ in 0..2 {
        let error = service.clone().oneshot(true).await.unwrap_err();
        assert_eq!(error, CallError::Inner("agent down"));
    }
    let error = service.clone().oneshot(false).await.unwrap_err();

    let CallError::Rejected(rejected) = error else {
        panic!("expected a rejection, got {error:?}");
    };
    assert_eq!(rejected.state, CircuitState::Open);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the rejected call never reached the agent"
    );
}

#[tokio::test]
async fn the_service_gives_access_to_the_inner_service() {
    let (breaker, _clock) = breaker(2);
    let mut service = CircuitBreakerService::new(7_u32, breaker, id("agent-1"));
    assert_eq!(*service.get_ref(), 7);
    *service.get_mut() = 8;
    assert_eq!(service.agent(), &id("agent-1"));
    assert_eq!(service.into_inner(), 8);
}

#[tokio::test]
async fn the_failover_service_routes_each_request_in_priority_order() {
    let (breaker, _clock) = breaker(5);
    let router = FailoverRouter::new(breaker);
    let inner = service_fn(|(agent, n): (AgentId, u32)| async move {
        if agent.as_str() == "agent-1" {
            Err(format!("{agent} refused"))
        } else {
            Ok(n * 2)
        }
    });
    let service = FailoverService::new(inner, router.clone(), vec![id("agent-1"), id("agent-2")]);

    let routed = service.oneshot(21).await.unwrap();

    assert_eq!((routed.value, routed.agent.as_str()), (42, "agent-2"));
    let failures = router.recent_failures(1).await.unwrap();
    assert_eq!(
        (failures[0].task_id.as_str(), failures[0].reason.as_str()),
        ("tower-0", "agent-1 refused")
    );
}
