//! A flushed Redis (`FLUSHALL`, or the stream deleted) takes the consumer
//! groups with it: the transitions made right after must still be POSTed.

use fleet_breaker::alerts::WebhookHandle;
use fleet_breaker::{AgentId, CircuitBreaker};

use crate::common::{WAIT, breaker, force_auto, force_open, hooks, known, open_agent_1, store};
use crate::receiver::Receiver;
use crate::support::{TestRedis, unique_prefix, wait_until};

/// A webhook consumer on a fresh Redis under `name`'s prefix, whose first
/// transition (agent-1 opened) has been delivered.
struct Delivering {
    redis: TestRedis,
    prefix: String,
    receiver: Receiver,
    handle: WebhookHandle,
    breaker: CircuitBreaker,
    agent_1: AgentId,
}

async fn delivering(name: &str) -> Delivering {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix(name);
    let store = store(&redis, &prefix).await;
    let receiver = Receiver::start().await;
    let handle = hooks([receiver.url()])
        .consumer("pod-a")
        .build()
        .unwrap()
        .spawn_redis(&store)
        .await
        .unwrap();
    let breaker = breaker(&store);
    let (agent_1, _) = open_agent_1(&breaker).await;
    wait_until("the first transition is delivered", WAIT, || async {
        receiver.accepted().len() == 1
    })
    .await;
    Delivering {
        redis,
        prefix,
        receiver,
        handle,
        breaker,
        agent_1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_right_after_a_flushall_are_still_delivered() {
    let Delivering {
        redis,
        receiver,
        handle,
        breaker,
        ..
    } = delivering("alerts-flushall").await;

    // The stream and its group go; the transitions made at once land in a
    // new stream before the consumer finds its group gone.
    redis.flushall().await;
    let flushed_at = std::time::Instant::now();
    let agent = AgentId::new("agent-after-flush").unwrap();
    known(&breaker, &agent).await;
    let opened = force_open(&breaker, &agent).await;
    let closed = force_auto(&breaker, &agent).await;

    wait_until(
        "both transitions after the flush are delivered",
        WAIT,
        || async { receiver.accepted().len() >= 3 },
    )
    .await;
    println!(
        "both transitions after the FLUSHALL were delivered {:?} after it",
        flushed_at.elapsed()
    );
    let after: Vec<_> = receiver
        .accepted()
        .into_iter()
        .filter_map(|r| r.transition)
        .filter(|t| t.agent_id == agent)
        .collect();
    assert_eq!(after, [opened, closed]);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_right_after_the_stream_is_deleted_are_still_delivered() {
    let Delivering {
        redis,
        prefix,
        receiver,
        handle,
        breaker,
        agent_1: agent,
    } = delivering("alerts-del-stream").await;

    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}:transitions"))
        .query_async(&mut redis.connection().await)
        .await
        .unwrap();
    let closed = force_auto(&breaker, &agent).await;
    let reopened = force_open(&breaker, &agent).await;

    wait_until(
        "both transitions after the delete are delivered",
        WAIT,
        || async { receiver.accepted().len() >= 3 },
    )
    .await;
    let mut after: Vec<_> = receiver
        .accepted()
        .into_iter()
        .filter_map(|r| r.transition)
        .skip(1)
        .collect();
    after.sort_by_key(|t| t.generation);
    assert_eq!(after, [closed, reopened]);
    handle.shutdown().await;
}

/// Entries of the transitions stream that are not transitions (written by
/// something else) are skipped, acknowledged and counted; the transitions
/// after them are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_stream_entries_are_skipped_and_counted() {
    let Delivering {
        redis,
        prefix,
        receiver,
        handle,
        breaker,
        agent_1: agent,
    } = delivering("alerts-malformed").await;
    let mut conn = redis.connection().await;
    for fields in [&["msg", "not json"][..], &["garbage", "only"][..]] {
        let _: String = redis::cmd("XADD")
            .arg(format!("{prefix}:transitions"))
            .arg("*")
            .arg(fields)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let closed = force_auto(&breaker, &agent).await;
    // The receiver holds the request before the delivery task, having read
    // the answer, counts it: wait for the count too.
    wait_until(
        "the transition after the garbage is delivered and counted",
        WAIT,
        || async { receiver.accepted().len() >= 2 && handle.stats()[0].delivered >= 2 },
    )
    .await;
    let stats = &handle.stats()[0];
    assert_eq!((stats.delivered, stats.malformed), (2, 2), "{stats:?}");
    let last = receiver.accepted().pop().and_then(|r| r.transition);
    assert_eq!(last, Some(closed));
    handle.shutdown().await;
}
