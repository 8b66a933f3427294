//! Retries with backoff, and dead letters after `max_tries`.

use std::sync::{Arc, Mutex};

use fleet_breaker::AgentId;
use fleet_breaker::alerts::{DeliveryOutcome, EndpointStats};

use crate::common::{
    WAIT, breaker, dead_letters, force_open, hooks, known, open_agent_1, store, wait_all_acked,
};
use crate::receiver::Receiver;
use crate::support::{TestRedis, unique_prefix, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_failing_twice_gets_the_transition_once_on_the_third_try() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("alerts-retry");
    let store = store(&redis, &prefix).await;
    let receiver = Receiver::start().await;
    receiver.fail_next(2);
    let handle = hooks([receiver.url()])
        .build()
        .unwrap()
        .spawn_redis(&store)
        .await
        .unwrap();

    let breaker = breaker(&store);
    let (_, opened) = open_agent_1(&breaker).await;

    wait_until("the third try is accepted", WAIT, || async {
        !receiver.accepted().is_empty()
    })
    .await;
    wait_all_acked(&redis, &prefix, &receiver.url()).await;
    let arrived = receiver.arrived();
    let attempts: Vec<u64> = arrived.iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(
        arrived
            .iter()
            .all(|r| r.delivery_id == arrived[0].delivery_id)
    );
    assert!(
        arrived
            .iter()
            .all(|r| r.transition.as_ref() == Some(&opened))
    );
    assert_eq!(receiver.accepted().len(), 1);
    let stats = &handle.stats()[0];
    assert_eq!(
        (stats.delivered, stats.failed, stats.dead_lettered),
        (1, 2, 0)
    );
    assert!(dead_letters(&redis, &prefix).await.is_empty());
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_that_always_fails_gets_the_transition_dead_lettered_after_max_tries() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("alerts-dead");
    let store = store(&redis, &prefix).await;
    let receiver = Receiver::start().await;
    receiver.always_fail();
    let seen: Arc<Mutex<Vec<(String, DeliveryOutcome)>>> = Arc::default();
    let observer = {
        let seen = Arc::clone(&seen);
        move |url: &str, outcome| seen.lock().unwrap().push((url.to_owned(), outcome))
    };
    let handle = hooks([receiver.url()])
        .max_tries(3)
        .observer(observer)
        .build()
        .unwrap()
        .spawn_redis(&store)
        .await
        .unwrap();

    let breaker = breaker(&store);
    let (_, opened) = open_agent_1(&breaker).await;

    wait_until("the transition is dead-lettered", WAIT, || async {
        handle.stats()[0].dead_lettered == 1
    })
    .await;
    wait_all_acked(&redis, &prefix, &receiver.url()).await;

    let letters = dead_letters(&redis, &prefix).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter["url"], receiver.url());
    assert_eq!(letter["tries"], "3");
    assert!(letter["error"].contains("500"), "{letter:?}");
    assert_eq!(letter["id"], receiver.arrived()[0].delivery_id);
    let msg: fleet_breaker::Transition = serde_json::from_str(&letter["msg"]).unwrap();
    assert_eq!(msg, opened);
    assert_eq!(receiver.arrived().len(), 3, "max_tries tries, no more");
    assert_eq!(
        handle.stats(),
        [EndpointStats {
            url: receiver.url(),
            delivered: 0,
            failed: 2,
            dead_lettered: 1,
            filtered: 0,
            malformed: 0,
        }]
    );
    let outcomes: Vec<_> = seen.lock().unwrap().iter().map(|(_, o)| *o).collect();
    assert_eq!(
        outcomes,
        [
            DeliveryOutcome::Failed,
            DeliveryOutcome::Failed,
            DeliveryOutcome::DeadLettered
        ]
    );
    // No further try once dead-lettered: meanwhile a later transition goes
    // through all of its tries, backoffs included, to the dead letters.
    let later = AgentId::new("agent-2").unwrap();
    known(&breaker, &later).await;
    force_open(&breaker, &later).await;
    wait_until("a later transition is dead-lettered too", WAIT, || async {
        handle.stats()[0].dead_lettered == 2
    })
    .await;
    let tries_of_the_first = receiver
        .arrived()
        .iter()
        .filter(|r| r.transition.as_ref() == Some(&opened))
        .count();
    assert_eq!(tries_of_the_first, 3);
    handle.shutdown().await;
}
