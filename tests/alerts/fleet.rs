//! Once per URL fleet-wide: several instances on one Redis, crashes,
//! malformed entries.

use std::collections::HashMap;
use std::time::Duration;

use fleet_breaker::alerts::{DELIVERY_HEADER, Webhooks};
use fleet_breaker::{AgentId, CircuitState, ForceMode};

use crate::common::{
    WAIT, breaker, each_instance_delivers_a_later_transition, force_auto, force_open, hooks, known,
    open_agent_1, pending, store, wait_all_acked,
};
use crate::receiver::{Received, Receiver};
use crate::support::{TestRedis, unique_prefix, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_each_transition_exactly_once_per_url() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("alerts-once");
    let store = store(&redis, &prefix).await;
    let receiver = Receiver::start().await;
    let first = hooks([receiver.url()]).consumer("pod-a").build().unwrap();
    let second = hooks([receiver.url()]).consumer("pod-b").build().unwrap();
    let a = first.spawn_redis(&store).await.unwrap();
    let b = second.spawn_redis(&store).await.unwrap();

    let breaker = breaker(&store);
    let (agent, opened) = open_agent_1(&breaker).await;
    let closed = force_auto(&breaker, &agent).await;
    let reopened = force_open(&breaker, &agent).await;

    wait_until("three transitions are delivered", WAIT, || async {
        receiver.accepted().len() >= 3
    })
    .await;
    wait_all_acked(&redis, &prefix, &receiver.url()).await;
    // Both instances go a round past this point, where a wrongly repeated
    // delivery would show.
    let markers = each_instance_delivers_a_later_transition(&breaker, &[&a, &b]).await;
    let all = 3 + markers.len();

    let accepted = receiver.accepted();
    let mut got: Vec<_> = accepted
        .iter()
        .map(|r| r.transition.clone().unwrap())
        .filter(|t| t.agent_id == agent)
        .collect();
    got.sort_by_key(|t| t.generation);
    assert_eq!(got, [opened, closed, reopened]);
    let mut ids: Vec<_> = accepted.iter().map(|r| r.delivery_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        all,
        "one delivery id per transition: {accepted:?}"
    );
    assert_eq!(
        receiver.arrived().len(),
        all,
        "no request beyond one a transition"
    );
    assert!(
        accepted
            .iter()
            .all(|r| r.attempt == 1 && r.content_type == "application/json")
    );
    let delivered: u64 = [&a, &b].iter().map(|h| h.stats()[0].delivered).sum();
    assert_eq!(
        delivered as usize, all,
        "the two instances delivered each once in all"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_url_gets_the_transition_once_and_a_failing_url_does_not_resend_to_others() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("alerts-two-urls");
    let store = store(&redis, &prefix).await;
    let (one, two) = (Receiver::start().await, Receiver::start().await);
    two.fail_next(2);
    let urls = [one.url(), two.url()];
    let a = hooks(urls.clone()).consumer("pod-a").build().unwrap();
    let b = hooks(urls.clone()).consumer("pod-b").build().unwrap();
    let (a, b) = (
        a.spawn_redis(&store).await.unwrap(),
        b.spawn_redis(&store).await.unwrap(),
    );

    let breaker = breaker(&store);
    let (agent, opened) = open_agent_1(&breaker).await;

    for receiver in [&one, &two] {
        wait_until("the transition reaches the URL", WAIT, || async {
            !receiver.accepted().is_empty()
        })
        .await;
        wait_all_acked(&redis, &prefix, &receiver.url()).await;
    }
    // Both instances go a round past this point on both URLs, where a
    // wrongly repeated delivery would show.
    let markers = each_instance_delivers_a_later_transition(&breaker, &[&a, &b]).await;
    let of_agent_1 = |receiver: &Receiver| -> Vec<Received> {
        receiver
            .arrived()
            .into_iter()
            .filter(|r| r.transition.as_ref().is_some_and(|t| t.agent_id == agent))
            .collect()
    };
    assert_eq!(of_agent_1(&one).len(), 1, "the healthy URL got it once");
    assert_eq!(
        of_agent_1(&two).len(),
        3,
        "the failing URL got two failed tries and one good"
    );
    for receiver in [&one, &two] {
        assert_eq!(
            receiver.arrived().len() - of_agent_1(receiver).len(),
            markers.len(),
            "each later transition once"
        );
        let accepted: Vec<_> = receiver
            .accepted()
            .into_iter()
            .filter(|r| r.transition.as_ref().is_some_and(|t| t.agent_id == agent))
            .collect();
        assert_eq!(accepted.len(), 1);
        assert_eq!(accepted[0].transition.as_ref(), Some(&opened));
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_held_by_a_crashed_instance_is_taken_over_by_another() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("alerts-reclaim");
    let store = store(&redis, &prefix).await;
    let receiver = Receiver::start().await;
    receiver.hang_next(1);
    let settings = |name: &str| {
        Webhooks::builder([receiver.url()])
            .retry_backoff(Duration::from_millis(20), Duration::from_millis(100))
            .timeout(Duration::from_secs(1))
            .reclaim_idle(Duration::from_millis(1200))
            .poll_interval(Duration::from_millis(50))
            .consumer(name)
            .build()
            .unwrap()
    };
    let crashing = settings("pod-a").spawn_redis(&store).await.unwrap();

    let breaker = breaker(&store);
    let (_, opened) = open_agent_1(&breaker).await;
    wait_until("the first instance is mid-delivery", WAIT, || async {
        !receiver.arrived().is_empty()
    })
    .await;
    drop(crashing); // Aborts its task mid-request: no ack, no retry.
    assert_eq!(pending(&redis, &prefix, &receiver.url()).await, 1);

    let survivor = settings("pod-b").spawn_redis(&store).await.unwrap();
    wait_until("the other instance delivers it", WAIT, || async {
        !receiver.accepted().is_empty()
    })
    .await;
    wait_all_acked(&redis, &prefix, &receiver.url()).await;

    let arrived = receiver.arrived();
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1, "{arrived:?}");
    assert_eq!(accepted[0].transition.as_ref(), Some(&opened));
    assert_eq!(
        accepted[0].delivery_id, arrived[0].delivery_id,
        "same {DELIVERY_HEADER}"
    );
    assert_eq!(accepted[0].attempt, 2, "the take-over is the second try");
    assert_eq!(survivor.stats()[0].delivered, 1);
    survivor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_stream_entries_are_skipped_and_acknowledged() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("alerts-malformed");
    let store = store(&redis, &prefix).await;
    let receiver = Receiver::start().await;
    let handle = hooks([receiver.url()])
        .build()
        .unwrap()
        .spawn_redis(&store)
        .await
        .unwrap();

    let mut conn = redis.connection().await;
    let key = format!("{prefix}:transitions");
    let garbage: [&[&str]; 4] = [
        &["msg", "not json"],
        &["other", "field"],
        &["msg", r#"{"agent_id":"bad agent{}","from":"closed"}"#],
        &["msg", "[1,2,3]"],
    ];
    for fields in garbage {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&key).arg("*");
        for f in fields {
            cmd.arg(*f);
        }
        let _: String = cmd.query_async(&mut conn).await.unwrap();
    }
    let breaker = breaker(&store);
    let (_, opened) = open_agent_1(&breaker).await;
    assert_eq!(opened.to, CircuitState::ForcedOpen);

    wait_until("the real transition is delivered", WAIT, || async {
        !receiver.accepted().is_empty()
    })
    .await;
    wait_all_acked(&redis, &prefix, &receiver.url()).await;
    let arrived = receiver.arrived();
    assert_eq!(
        arrived.len(),
        1,
        "only the transition was POSTed: {arrived:?}"
    );
    assert_eq!(arrived[0].transition.as_ref(), Some(&opened));
    let stats = &handle.stats()[0];
    assert_eq!(
        (stats.delivered, stats.failed, stats.dead_lettered),
        (1, 0, 0)
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_url_starts_at_the_end_of_the_stream_and_a_graceful_stop_leaves_the_group() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("alerts-new-url");
    let store = store(&redis, &prefix).await;
    let breaker = breaker(&store);
    let agent = AgentId::new("agent-1").unwrap();
    known(&breaker, &agent).await;
    force_open(&breaker, &agent).await; // Before any webhook: history.

    let receiver = Receiver::start().await;
    let hooks = hooks([receiver.url()]).consumer("pod-a").build().unwrap();
    let handle = hooks.spawn_redis(&store).await.unwrap();
    let closed = force_auto(&breaker, &agent).await;
    wait_until("the new transition is delivered", WAIT, || async {
        !receiver.accepted().is_empty()
    })
    .await;
    // A later transition, delivered in stream order after everything the
    // consumer read before it: a replay of the history would show by then.
    let reopened = force_open(&breaker, &agent).await;
    wait_until("the later transition is delivered", WAIT, || async {
        receiver.accepted().len() >= 2
    })
    .await;
    wait_all_acked(&redis, &prefix, &receiver.url()).await;
    let accepted: Vec<_> = receiver
        .accepted()
        .into_iter()
        .map(|r| r.transition)
        .collect();
    assert_eq!(
        accepted,
        [Some(closed), Some(reopened)],
        "history is not replayed"
    );

    handle.shutdown().await;
    let mut conn = redis.connection().await;
    let consumers: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(format!("{prefix}:transitions"))
        .arg(fleet_breaker::alerts::group_name(&receiver.url()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        consumers.is_empty(),
        "the stopped consumer left: {consumers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_resumes_after_redis_restarts_and_loses_the_groups() {
    let mut redis = TestRedis::start().await;
    if !redis.is_owned() {
        eprintln!("skipped: REDIS_URL's server cannot be restarted by the tests");
        return;
    }
    let prefix = unique_prefix("alerts-restart");
    let store = store(&redis, &prefix).await;
    let receiver = Receiver::start().await;
    let handle = hooks([receiver.url()])
        .build()
        .unwrap()
        .spawn_redis(&store)
        .await
        .unwrap();

    redis.restart().await; // Empty: no stream, no group.
    let breaker = breaker(&store);
    let agent = AgentId::new("agent-1").unwrap();
    // The dispatcher recreates its group when it reconnects; a transition
    // made before that is not in its group, so make them until one arrives.
    wait_until(
        "a transition made after the restart is delivered",
        WAIT,
        || async {
            if let Ok(permit) = breaker.acquire(&agent).await {
                permit.success().await;
                let _ = breaker.force(&agent, ForceMode::Open, None).await;
                let _ = breaker.force(&agent, ForceMode::Auto, None).await;
            }
            handle.stats()[0].delivered > 0
        },
    )
    .await;
    assert!(!receiver.accepted().is_empty());
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_try_interrupted_by_a_crash_is_dead_lettered_not_sent_again() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("alerts-last-try");
    let store = store(&redis, &prefix).await;
    let receiver = Receiver::start().await;
    receiver.hang_next(1);
    let settings = |name: &str| {
        Webhooks::builder([receiver.url()])
            .max_tries(1)
            .timeout(Duration::from_secs(1))
            .reclaim_idle(Duration::from_millis(1200))
            .poll_interval(Duration::from_millis(50))
            .consumer(name)
            .build()
            .unwrap()
    };
    let crashing = settings("pod-a").spawn_redis(&store).await.unwrap();
    let breaker = breaker(&store);
    let (_, opened) = open_agent_1(&breaker).await;
    wait_until("the only try is under way", WAIT, || async {
        !receiver.arrived().is_empty()
    })
    .await;
    drop(crashing);

    let survivor = settings("pod-b").spawn_redis(&store).await.unwrap();
    wait_until("the other instance dead-letters it", WAIT, || async {
        survivor.stats()[0].dead_lettered == 1
    })
    .await;
    let letters = crate::common::dead_letters(&redis, &prefix).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["tries"], "1");
    assert!(letters[0]["error"].contains("interrupted"), "{letters:?}");
    let msg: fleet_breaker::Transition = serde_json::from_str(&letters[0]["msg"]).unwrap();
    assert_eq!(msg, opened);
    assert_eq!(receiver.arrived().len(), 1, "max_tries 1: never sent again");
    assert_eq!(pending(&redis, &prefix, &receiver.url()).await, 0);
    survivor.shutdown().await;
}
