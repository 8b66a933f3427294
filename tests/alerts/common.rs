//! Building breakers, stores and webhooks for the tests, and reading the
//! webhook keys.

use std::collections::HashMap;
use std::time::Duration;

use fleet_breaker::alerts::{
    WebhookHandle, Webhooks, WebhooksBuilder, dead_letter_key, group_name,
};
use fleet_breaker::{AgentId, CircuitBreaker, ForceMode, RedisStore, Transition};

use crate::support::{TestRedis, wait_until};

/// The bound on every wait for a delivery.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) async fn store(redis: &TestRedis, prefix: &str) -> RedisStore {
    RedisStore::builder(redis.url())
        .prefix(prefix)
        .timeout(Duration::from_secs(2))
        .pool_size(2)
        .build()
        .await
        .expect("connect to the test Redis")
}

pub(crate) fn breaker(store: &RedisStore) -> CircuitBreaker {
    CircuitBreaker::builder()
        .store(store.clone())
        .build()
        .expect("build the breaker")
}

/// Short backoffs and polls, so retries take milliseconds.
pub(crate) fn hooks<S: Into<String>>(urls: impl IntoIterator<Item = S>) -> WebhooksBuilder {
    Webhooks::builder(urls)
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .timeout(Duration::from_secs(2))
        .reclaim_idle(Duration::from_secs(3))
        .poll_interval(Duration::from_millis(50))
}

/// Makes `agent` known to the store (no transition).
pub(crate) async fn known(breaker: &CircuitBreaker, agent: &AgentId) {
    breaker
        .acquire(agent)
        .await
        .expect("a closed circuit admits")
        .success()
        .await;
}

/// Forces `agent` open: exactly one transition.
pub(crate) async fn force_open(breaker: &CircuitBreaker, agent: &AgentId) -> Transition {
    breaker
        .force(agent, ForceMode::Open, None)
        .await
        .expect("force open")
}

/// `agent-1`, made known and then forced open: exactly one transition,
/// returned with the agent.
pub(crate) async fn open_agent_1(breaker: &CircuitBreaker) -> (AgentId, Transition) {
    let agent = AgentId::new("agent-1").unwrap();
    known(breaker, &agent).await;
    let opened = force_open(breaker, &agent).await;
    (agent, opened)
}

/// Ends the force on `agent`: exactly one transition.
pub(crate) async fn force_auto(breaker: &CircuitBreaker, agent: &AgentId) -> Transition {
    breaker
        .force(agent, ForceMode::Auto, None)
        .await
        .expect("force auto")
}

/// How many deliveries of `url`'s group are unacknowledged.
pub(crate) async fn pending(redis: &TestRedis, prefix: &str, url: &str) -> u64 {
    pending_in(&mut redis.connection().await, prefix, url).await
}

/// [`pending`] through any connection (to a cluster, say).
pub(crate) async fn pending_in(
    conn: &mut impl redis::aio::ConnectionLike,
    prefix: &str,
    url: &str,
) -> u64 {
    let key = format!("{prefix}:transitions");
    let reply: redis::Value = redis::cmd("XPENDING")
        .arg(&key)
        .arg(group_name(url))
        .query_async(conn)
        .await
        .expect("XPENDING");
    match reply {
        redis::Value::Array(parts) => match parts.first() {
            Some(redis::Value::Int(n)) => u64::try_from(*n).unwrap(),
            other => panic!("odd XPENDING reply {other:?}"),
        },
        other => panic!("odd XPENDING reply {other:?}"),
    }
}

/// Waits until `url`'s group holds no unacknowledged delivery.
pub(crate) async fn wait_all_acked(redis: &TestRedis, prefix: &str, url: &str) {
    wait_until("every delivery is acknowledged", WAIT, || async {
        pending(redis, prefix, url).await == 0
    })
    .await;
}

/// The entries of the dead-letter stream, oldest first.
pub(crate) async fn dead_letters(redis: &TestRedis, prefix: &str) -> Vec<HashMap<String, String>> {
    dead_letters_in(&mut redis.connection().await, prefix).await
}

/// [`dead_letters`] through any connection (to a cluster, say).
pub(crate) async fn dead_letters_in(
    conn: &mut impl redis::aio::ConnectionLike,
    prefix: &str,
) -> Vec<HashMap<String, String>> {
    let key = dead_letter_key(&fleet_breaker::store::Keys::new(prefix));
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE");
    entries.into_iter().map(|(_, fields)| fields).collect()
}

/// Makes transitions of an agent `marker` (forced open, back to auto, ...),
/// each waited for at every URL, until each of `handles` has settled one
/// of them (delivered or dead-lettered) for every URL: each instance has
/// then gone through a round of its loop (retries due, read, deliveries)
/// after this point, where a wrongly repeated delivery would have shown.
/// Which instance reads an entry is Redis's choice, so this takes a few;
/// the transitions made are returned, for the caller to tell them apart.
pub(crate) async fn each_instance_delivers_a_later_transition(
    breaker: &CircuitBreaker,
    handles: &[&WebhookHandle],
) -> Vec<Transition> {
    let settled = || -> Vec<Vec<u64>> {
        handles
            .iter()
            .map(|h| {
                h.stats()
                    .iter()
                    .map(|s| s.delivered + s.dead_lettered)
                    .collect()
            })
            .collect()
    };
    let at_every_url = |counts: &[Vec<u64>]| -> Vec<u64> {
        let urls = counts.first().map_or(0, Vec::len);
        (0..urls)
            .map(|url| counts.iter().map(|h| h[url]).sum())
            .collect()
    };
    let before = settled();
    let marker = AgentId::new("marker").unwrap();
    known(breaker, &marker).await;
    let mut made = Vec::new();
    // Far more than two instances need, unless one never reads again.
    for _ in 0..20 {
        made.push(if made.len() % 2 == 0 {
            force_open(breaker, &marker).await
        } else {
            force_auto(breaker, &marker).await
        });
        let goal: Vec<u64> = at_every_url(&before)
            .iter()
            .map(|n| n + made.len() as u64)
            .collect();
        wait_until("the marker transition reaches every URL", WAIT, || {
            let reached = at_every_url(&settled())
                .iter()
                .zip(&goal)
                .all(|(n, goal)| n >= goal);
            async move { reached }
        })
        .await;
        let now = settled();
        let each_settled = now
            .iter()
            .zip(&before)
            .all(|(now, before)| now.iter().zip(before).all(|(now, before)| now > before));
        if each_settled {
            return made;
        }
    }
    panic!(
        "an instance settled none of {} later transitions",
        made.len()
    );
}
