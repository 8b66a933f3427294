//! A watcher on a test Redis, and ways to publish what the scripts publish.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleet_breaker::store::{BreakerStore, FeedHandle, FeedOptions, FeedTarget, Keys, Resync};
use fleet_breaker::testing::Cache;
use fleet_breaker::{AgentId, CircuitState, RedisStore, SystemClock, Transition, TransitionReason};
use futures::future::BoxFuture;
use redis::aio::MultiplexedConnection;
use tokio::sync::broadcast;

use crate::support::{TestRedis, init_tracing, unique_prefix, wait_until};

/// The cache's `max_staleness` in these tests.
pub(crate) const MAX_STALENESS: Duration = Duration::from_secs(1);

/// A Redis store's feed (its watcher), the cache it feeds, and what its
/// resync callback was called with.
pub(crate) struct Rig {
    pub(crate) keys: Keys,
    pub(crate) cache: Arc<Cache>,
    pub(crate) watcher: FeedHandle,
    pub(crate) resyncs: Arc<Mutex<Vec<Vec<AgentId>>>>,
}

/// Fast pings and reconnections, so that outages resolve quickly.
pub(crate) fn fast() -> FeedOptions {
    FeedOptions {
        ping_interval: Duration::from_millis(100),
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(200),
    }
}

/// Starts the feed of a store under a fresh prefix (200 ms timeout) and
/// waits until it is connected.
pub(crate) async fn rig(redis: &TestRedis, test: &str, options: FeedOptions) -> Rig {
    init_tracing();
    let store = RedisStore::builder(redis.url())
        .prefix(unique_prefix(test))
        .timeout(Duration::from_millis(200))
        .build()
        .await
        .expect("connect");
    let rig = spawn(&store, options);
    wait_connected(&rig, 0).await;
    rig
}

/// Starts `store`'s feed into a new cache, with a resync that records its
/// calls.
pub(crate) fn spawn(store: &RedisStore, options: FeedOptions) -> Rig {
    let keys = store.keys().clone();
    let cache = Arc::new(Cache::new(MAX_STALENESS, Arc::new(SystemClock)));
    let resyncs = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::clone(&resyncs);
    let resync: Resync = Arc::new(move |agents: Vec<AgentId>| {
        calls.lock().unwrap().push(agents);
        Box::pin(async {}) as BoxFuture<'static, ()>
    });
    let watcher = store.feed().start(Some(FeedTarget {
        sink: cache.clone(),
        resync,
        options,
    }));
    Rig {
        keys,
        cache,
        watcher,
        resyncs,
    }
}

/// Waits until the watcher is connected after at least `reconnects`
/// reconnections, and the cache trusts the subscription.
pub(crate) async fn wait_connected(rig: &Rig, reconnects: u64) {
    let what = format!("the watcher is connected after {reconnects} reconnection(s)");
    wait_until(&what, Duration::from_secs(5), || async {
        rig.watcher.is_connected()
            && rig.watcher.reconnects() >= reconnects
            && rig.cache.is_subscribed()
    })
    .await;
}

pub(crate) fn agent(name: &str) -> AgentId {
    AgentId::new(name).expect("a valid agent id")
}

pub(crate) fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

/// A plausible transition into generation `generation`: closed -> open at
/// 1, then open -> half_open, half_open -> open, alternating.
pub(crate) fn transition(agent: &AgentId, generation: u64) -> Transition {
    let (from, to, reason) = match generation {
        0 | 1 => (
            CircuitState::Closed,
            CircuitState::Open,
            TransitionReason::FailureThreshold,
        ),
        g if g % 2 == 0 => (
            CircuitState::Open,
            CircuitState::HalfOpen,
            TransitionReason::BackoffElapsed,
        ),
        _ => (
            CircuitState::HalfOpen,
            CircuitState::Open,
            TransitionReason::ProbeFailed,
        ),
    };
    let open = to == CircuitState::Open;
    Transition {
        agent_id: agent.clone(),
        from,
        to,
        generation,
        at_ms: now_ms(),
        reason,
        backoff_seconds: 1.5,
        open_until_ms: if open { now_ms() + 60_000 } else { 0 },
        epoch: 0,
    }
}

/// What `lua/lib.lua`'s `save` does with a transition: the agent's hash
/// at its generation (and epoch, when the message has one), `XADD` to the
/// stream, then `PUBLISH`. Returns how many subscribers received it.
///
/// The watcher believes a transition that is not plainly the next one of
/// its agent only once the hash confirms it, hence the hash.
pub(crate) async fn publish(conn: &mut MultiplexedConnection, keys: &Keys, t: &Transition) -> u64 {
    let json = serde_json::to_vec(t).unwrap();
    write_hash(conn, keys, t).await;
    append(conn, keys, &[("msg", &json[..])]).await;
    publish_raw(conn, &keys.events(), &json).await
}

/// The agent's hash at the generation (and epoch, when it has one) of
/// `t`, as the script that made `t` leaves it; never back to a lower
/// generation (a store's generation only grows), so that tests publishing
/// old generations again do not take the hash back.
pub(crate) async fn write_hash(conn: &mut MultiplexedConnection, keys: &Keys, t: &Transition) {
    let stored: Option<u64> = redis::cmd("HGET")
        .arg(keys.state(&t.agent_id))
        .arg("generation")
        .query_async(conn)
        .await
        .expect("HGET");
    if stored.is_some_and(|stored| stored >= t.generation) {
        return;
    }
    let mut hset = redis::cmd("HSET");
    hset.arg(keys.state(&t.agent_id))
        .arg("generation")
        .arg(t.generation);
    if t.epoch != 0 {
        hset.arg("epoch").arg(t.epoch);
    }
    let _: u64 = hset.query_async(conn).await.expect("HSET");
}

/// `XADD stream MAXLEN ~ 1000 * field value ...`, nothing published.
pub(crate) async fn append(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    fields: &[(&str, &[u8])],
) {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(keys.transitions())
        .arg("MAXLEN")
        .arg("~")
        .arg(1000)
        .arg("*");
    for (field, value) in fields {
        cmd.arg(*field).arg(*value);
    }
    let _: String = cmd.query_async(conn).await.expect("XADD");
}

/// `PUBLISH channel payload`; the number of receivers.
pub(crate) async fn publish_raw(
    conn: &mut MultiplexedConnection,
    channel: &str,
    payload: &[u8],
) -> u64 {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async(conn)
        .await
        .expect("PUBLISH")
}

/// The next transition a subscriber gets, within 3 s.
pub(crate) async fn next(rx: &mut broadcast::Receiver<Transition>) -> Transition {
    tokio::time::timeout(Duration::from_secs(3), rx.recv())
        .await
        .expect("a transition within 3 s")
        .expect("the watcher is running and the receiver kept up")
}

/// Generations `rx` receives for `agent` until (and including) `last`;
/// panics on another agent's transition or after 5 s.
pub(crate) async fn generations_until(
    rx: &mut broadcast::Receiver<Transition>,
    agent: &AgentId,
    last: u64,
) -> Vec<u64> {
    let mut seen = Vec::new();
    while seen.last() != Some(&last) {
        let t = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("generation {last} within 5 s; got {seen:?}"))
            .expect("the receiver kept up");
        assert_eq!(&t.agent_id, agent);
        seen.push(t.generation);
    }
    seen
}

/// How many times the resync ran.
pub(crate) fn resync_count(rig: &Rig) -> usize {
    rig.resyncs.lock().unwrap().len()
}
