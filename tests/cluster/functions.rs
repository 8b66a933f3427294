//! The store's function library on a cluster: each master gets it on the
//! first call that reaches it (a cluster store does not preload, as it did
//! not preload scripts: a node down at build would fail it), and a master
//! that lost it (a restart without persistence, a `FUNCTION FLUSH`) gets it
//! again the same way, the call itself unharmed.

use std::time::Duration;

use fleet_breaker::{CircuitBreaker, StorePolicy};

use crate::common::{id, store};
use crate::support::cluster::TestCluster;
use crate::support::{init_tracing, unique_prefix};

/// The store's libraries on the node at `url` (`FUNCTION LIST`).
async fn libraries(url: &str) -> Vec<redis::Value> {
    let mut conn = redis::Client::open(url)
        .expect("a node URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to a node");
    redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("LIBRARYNAME")
        .arg("fleet_breaker_*")
        .query_async(&mut conn)
        .await
        .expect("FUNCTION LIST")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_that_lost_the_library_loads_it_again_on_its_first_call() {
    init_tracing();
    let Some(cluster) = TestCluster::shared().await else {
        return;
    };
    if !cluster.is_owned() {
        eprintln!("skipped: REDIS_CLUSTER_URLS is a cluster this test may not flush");
        return;
    }
    let prefix = unique_prefix("cluster-functions");
    // Fail closed: a store error would show as a rejection.
    let breaker = CircuitBreaker::builder()
        .store(store(&cluster, &prefix, Duration::from_secs(2)).await)
        .policy(StorePolicy::FailClosed)
        .local_cache(false)
        .build()
        .expect("valid breaker");
    let masters = cluster.initial_masters();
    let agents = cluster.agents_on_every_master(1);
    calls_are_decided_by_the_cluster(&breaker, &agents, 1).await;
    for url in &masters {
        assert_eq!(libraries(url).await.len(), 1, "loaded on {url}");
    }

    for url in &masters {
        let mut conn = redis::Client::open(url.as_str())
            .expect("a node URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to a node");
        let () = redis::cmd("FUNCTION")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .expect("FUNCTION FLUSH");
    }
    calls_are_decided_by_the_cluster(&breaker, &agents, 2).await;
    for url in &masters {
        assert_eq!(libraries(url).await.len(), 1, "loaded again on {url}");
    }
}

/// A failure on each agent, decided and recorded by the cluster (the
/// breaker fails closed, so a store error would be a rejection), the
/// agent's `failures`-th.
async fn calls_are_decided_by_the_cluster(
    breaker: &CircuitBreaker,
    agents: &[String],
    failures: u64,
) {
    for agent in agents {
        let permit = breaker
            .acquire(&id(agent))
            .await
            .unwrap_or_else(|rejected| panic!("{agent} refused: {rejected:?}"));
        assert!(!permit.is_degraded(), "{agent}: decided by the cluster");
        permit.failure("boom").await;
        let snapshot = breaker.snapshot(&id(agent)).await.expect("a snapshot");
        assert_eq!(
            snapshot.failure_count, failures,
            "{agent}: the failure was recorded"
        );
    }
}
