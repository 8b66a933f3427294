//! Pods on a test cluster, and reads of the cluster's keys.

use std::sync::Arc;
use std::time::Duration;

use fleet_breaker::{
    AgentId, BreakerConfig, CircuitBreaker, ManualClock, Permit, RedisStore, RedisTarget,
    StorePolicy, Transition,
};
use futures::future::join_all;
use redis::AsyncCommands;

use crate::support::cluster::TestCluster;

pub(crate) fn id(agent: &str) -> AgentId {
    AgentId::new(agent).expect("valid agent id")
}

/// A store on the cluster under `prefix`.
pub(crate) async fn store(cluster: &TestCluster, prefix: &str, timeout: Duration) -> RedisStore {
    RedisStore::builder_for(RedisTarget::Cluster(cluster.urls()))
        .prefix(prefix)
        .timeout(timeout)
        .pool_size(4)
        .build()
        .await
        .expect("connect to the cluster")
}

/// `pods` breakers with their own stores and watchers.
pub(crate) async fn fleet(
    cluster: &TestCluster,
    prefix: &str,
    pods: usize,
    config: &BreakerConfig,
) -> Vec<CircuitBreaker> {
    fleet_on(cluster, prefix, pods, config, None).await
}

/// [`fleet`] whose scripts and caches all read `clock` (see
/// `support::fleet::fleet_clock`) instead of Redis `TIME`.
pub(crate) async fn fleet_on_clock(
    cluster: &TestCluster,
    prefix: &str,
    pods: usize,
    config: &BreakerConfig,
    clock: &ManualClock,
) -> Vec<CircuitBreaker> {
    fleet_on(cluster, prefix, pods, config, Some(clock)).await
}

async fn fleet_on(
    cluster: &TestCluster,
    prefix: &str,
    pods: usize,
    config: &BreakerConfig,
    clock: Option<&ManualClock>,
) -> Vec<CircuitBreaker> {
    join_all((0..pods).map(|pod| async move {
        let mut store = RedisStore::builder_for(RedisTarget::Cluster(cluster.urls()))
            .prefix(prefix)
            .timeout(Duration::from_secs(2))
            .pool_size(4);
        if let Some(clock) = clock {
            store = store.clock_override(Arc::new(clock.clone()));
        }
        CircuitBreaker::builder()
            .store(store.build().await.expect("connect to the cluster"))
            .config(*config)
            .policy(StorePolicy::FailClosed)
            .max_staleness(Duration::from_millis(500))
            .instance_id(format!("pod-{pod}"))
            .build()
            .expect("valid breaker")
    }))
    .await
}

/// The `PREFIX:transitions` stream, read through a cluster connection.
pub(crate) async fn published(cluster: &TestCluster, prefix: &str) -> Vec<Transition> {
    let client = redis::cluster::ClusterClient::new(cluster.urls()).expect("cluster client");
    let mut conn = client.get_async_connection().await.expect("connect");
    let reply: redis::streams::StreamRangeReply = conn
        .xrange_all(format!("{prefix}:transitions"))
        .await
        .expect("read stream");
    reply
        .ids
        .iter()
        .map(|e| serde_json::from_str(&e.get::<String>("msg").expect("msg")).expect("json"))
        .collect()
}

/// Every pod holds a permit granted while closed, then all record failures at once.
pub(crate) async fn open_by_racing_failures(pods: &[CircuitBreaker], agent: &AgentId) {
    let permits: Vec<Permit> = join_all(pods.iter().map(|pod| pod.acquire(agent)))
        .await
        .into_iter()
        .map(|p| p.expect("closed circuit admits"))
        .collect();
    join_all(permits.into_iter().map(|p| p.failure("down"))).await;
}
