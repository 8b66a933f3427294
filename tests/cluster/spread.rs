//! A fleet's subscriptions on a cluster spread over the seed nodes: a
//! `PUBLISH` reaches every node, so any node can serve a watcher, and
//! hundreds of pods on the first seed alone would give it all the fan-out.

use std::time::Duration;

use fleet_breaker::{BreakerConfig, CircuitBreaker, RedisStore, RedisTarget};

use crate::support::cluster::TestCluster;
use crate::support::{init_tracing, unique_prefix, wait_until};

const PODS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchers_of_a_fleet_subscribe_on_more_than_one_node() {
    init_tracing();
    let Some(cluster) = TestCluster::shared().await else {
        return;
    };
    let prefix = unique_prefix("cluster-spread");
    let mut pods = Vec::new();
    for _ in 0..PODS {
        let store = RedisStore::builder_for(RedisTarget::Cluster(cluster.urls()))
            .prefix(&prefix)
            .timeout(Duration::from_secs(2))
            .pool_size(1)
            .build()
            .await
            .expect("connect to the cluster");
        let pod = CircuitBreaker::builder()
            .store(store)
            .config(BreakerConfig::default())
            .build()
            .expect("valid breaker");
        pods.push(pod);
    }
    wait_until("every watcher subscribes", Duration::from_secs(10), || {
        let all = pods.iter().all(CircuitBreaker::is_watching);
        async move { all }
    })
    .await;

    // Subscribers of this fleet's channel, node by node.
    let channel = format!("{prefix}:events");
    let mut per_node = Vec::new();
    for url in cluster.urls() {
        let client = redis::Client::open(url.as_str()).expect("a node URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to a node");
        let (_, n): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut conn)
            .await
            .expect("PUBSUB NUMSUB");
        per_node.push(n);
    }
    assert_eq!(per_node.iter().sum::<u64>(), PODS as u64, "{per_node:?}");
    assert!(
        per_node.iter().filter(|&&n| n > 0).count() > 1,
        "all {PODS} subscriptions on one node: {per_node:?}"
    );
}
