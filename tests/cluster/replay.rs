//! A watcher on a cluster loses its subscription while transitions happen
//! on every master: it replays them from the transitions stream, read from
//! the node that owns it, once each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_breaker::store::{FeedOptions, FeedTarget, Resync, StoreExt};
use fleet_breaker::testing::Cache;
use fleet_breaker::{AgentId, BreakerConfig, BreakerStore, CircuitState, SystemClock};

use crate::common::{id, store};
use crate::support::cluster::TestCluster;
use crate::support::{init_tracing, procs, unique_prefix, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_replays_the_transitions_of_every_master_missed_while_its_subscription_was_down()
{
    init_tracing();
    let Some(cluster) = TestCluster::owned(3, 0).await else {
        return;
    };
    let prefix = unique_prefix("cluster-replay");
    let store = store(&cluster, &prefix, Duration::from_secs(1)).await;
    let config = BreakerConfig::default();
    let agents: Vec<AgentId> = cluster
        .agents_on_every_master(1)
        .iter()
        .map(|a| id(a))
        .collect();
    for agent in &agents {
        store.acquire(&config, agent, "p").await.unwrap();
    }
    let cache = Arc::new(Cache::new(Duration::from_secs(1), Arc::new(SystemClock)));
    let resync: Resync = Arc::new(|_agents| Box::pin(async {}));
    // A first retry 150 to 300 ms after the kill: time to act in the gap.
    let options = FeedOptions {
        ping_interval: Duration::from_millis(100),
        reconnect_min: Duration::from_millis(300),
        reconnect_max: Duration::from_millis(600),
    };
    let watcher = store.feed().start(Some(FeedTarget {
        sink: cache,
        resync,
        options,
    }));
    let mut heard = watcher.subscribe();
    wait_until("the watcher subscribes", Duration::from_secs(5), || {
        let connected = watcher.is_connected();
        async move { connected }
    })
    .await;

    // Kill the subscription wherever it is, then reset every agent (one
    // transition each, on three masters) before the watcher is back: its
    // first retry comes 150 ms after the kill at the earliest.
    let killed_at = Instant::now();
    let mut killed = 0;
    for url in cluster.urls() {
        let reply = procs::command(&url, &["CLIENT", "KILL", "TYPE", "pubsub"]);
        if let Ok(redis::Value::Int(n)) = reply {
            killed += n;
        }
    }
    assert_eq!(killed, 1, "the watcher's one subscription, on one node");
    for agent in &agents {
        store
            .reset(&config, agent)
            .await
            .unwrap()
            .expect("known agent");
    }
    assert!(
        killed_at.elapsed() < Duration::from_millis(150),
        "the resets happened in the gap: {:?}",
        killed_at.elapsed()
    );

    let mut replayed = Vec::new();
    while replayed.len() < agents.len() {
        let t = tokio::time::timeout(Duration::from_secs(3), heard.recv())
            .await
            .unwrap_or_else(|_| panic!("replayed only {replayed:?}"))
            .unwrap();
        assert_eq!((t.to, t.generation), (CircuitState::Closed, 1));
        replayed.push(t.agent_id);
    }
    // The replay runs inside the reconnection, which completes just after.
    wait_until("the reconnection completes", Duration::from_secs(2), || {
        let reconnects = watcher.reconnects();
        async move { reconnects == 1 }
    })
    .await;
    replayed.sort();
    let mut expected = agents.clone();
    expected.sort();
    assert_eq!(replayed, expected, "each master's transition once");
}
