//! `spawn_in_process`: delivery from one breaker's subscription, no Redis.

use std::time::Duration;

use fleet_breaker::alerts::Webhooks;
use fleet_breaker::{CircuitBreaker, CircuitState};

use crate::common::{WAIT, force_auto, open_agent_1};
use crate::receiver::Receiver;
use crate::support::wait_until;

#[tokio::test]
async fn the_embedded_store_delivers_each_transition_retrying_a_failed_try() {
    let receiver = Receiver::start().await;
    receiver.fail_next(1);
    let breaker = CircuitBreaker::in_memory();
    let handle = Webhooks::builder([receiver.url()])
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build()
        .unwrap()
        .spawn_in_process(&breaker);

    let (agent, opened) = open_agent_1(&breaker).await;
    let closed = force_auto(&breaker, &agent).await;
    assert_eq!(opened.to, CircuitState::ForcedOpen);

    wait_until("both transitions are delivered", WAIT, || async {
        handle.stats()[0].delivered == 2
    })
    .await;
    let accepted = receiver.accepted();
    let got: Vec<_> = accepted
        .iter()
        .map(|r| r.transition.clone().unwrap())
        .collect();
    assert_eq!(got, [opened, closed], "in order");
    assert!(accepted[0].delivery_id.starts_with("local-"));
    assert_eq!(accepted[0].attempt, 2, "the first try failed");
    assert_eq!(receiver.arrived()[0].delivery_id, accepted[0].delivery_id);
    assert_eq!(accepted[0].content_type, "application/json");
    let stats = &handle.stats()[0];
    assert_eq!(
        (stats.delivered, stats.failed, stats.dead_lettered),
        (2, 1, 0)
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn the_embedded_store_gives_up_after_max_tries() {
    let receiver = Receiver::start().await;
    receiver.always_fail();
    let breaker = CircuitBreaker::in_memory();
    let handle = Webhooks::builder([receiver.url()])
        .max_tries(2)
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build()
        .unwrap()
        .spawn_in_process(&breaker);
    open_agent_1(&breaker).await;

    wait_until("the transition is given up on", WAIT, || async {
        handle.stats()[0].dead_lettered == 1
    })
    .await;
    assert_eq!(receiver.arrived().len(), 2);
    assert_eq!(handle.stats()[0].failed, 1);
    handle.shutdown().await;
}

#[test]
fn only_http_and_https_urls_are_accepted() {
    for bad in [
        "ftp://example.com/hook",
        "not a url",
        "redis://127.0.0.1:6379",
    ] {
        let error = Webhooks::builder([bad]).build().unwrap_err();
        assert!(error.is_invalid_input(), "{bad}: {error}");
    }
    let error = Webhooks::builder(["https://u:secret@example.com/a"])
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("reclaim_idle"), "{error}");
}
