//! Building breakers, stores and webhooks for the tests, and reading the
//! webhook keys.

use std::collections::HashMap;
use std::time::Duration;

use fleet_breaker::alerts::{Webhooks, WebhooksBuilder, dead_letter_key, group_name};
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
