//! The census on a cluster: the scripts leave its hash (another slot) to
//! the client, which writes it after each script; the counts and the
//! agents not closed agree with reading every agent, and the sweep forgets
//! an agent whose keys are gone.

use std::time::Duration;

use fleet_breaker::model::{Decision, Ticket};
use fleet_breaker::store::{BreakerStore, StoreExt};
use fleet_breaker::{BreakerConfig, CircuitState, ForceMode, Outcome};

use crate::common::{id, store};
use crate::support::cluster::TestCluster;
use crate::support::unique_prefix;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_census_follows_transitions_on_a_cluster() {
    let Some(cluster) = TestCluster::shared().await else {
        return;
    };
    let prefix = unique_prefix("cluster-census");
    let store = store(&cluster, &prefix, Duration::from_secs(2)).await;
    let config = BreakerConfig::builder()
        .failure_threshold(1)
        .build()
        .expect("valid config");
    // Agents on different slots (and so, likely, masters).
    let agents: Vec<_> = (0..6).map(|i| id(&format!("census-{i}"))).collect();
    for agent in &agents {
        let granted = store.acquire(&config, agent, "p").await.expect("acquire");
        let Decision::Granted(grant) = granted.value else {
            panic!("{agent}: a new agent is closed");
        };
        if agent.as_str() < "census-3" {
            let ticket = Ticket {
                permit_id: "p".into(),
                generation: grant.generation,
            };
            store
                .record(&config, agent, &ticket, Outcome::Failure)
                .await
                .expect("record");
        }
    }
    store
        .force(&config, &agents[3], ForceMode::Open, None)
        .await
        .expect("force");
    store.reset(&config, &agents[0]).await.expect("reset");

    let census = store.census(&[]).await.expect("census").expect("a census");
    assert_eq!(census.total, 6);
    let not_closed: Vec<_> = census.not_closed.into_iter().collect();
    assert_eq!(
        not_closed,
        [
            (agents[1].clone(), CircuitState::Open),
            (agents[2].clone(), CircuitState::Open),
            (agents[3].clone(), CircuitState::ForcedOpen),
        ]
    );
    for agent in &agents {
        let read = store
            .snapshot(&config, agent)
            .await
            .expect("snapshot")
            .expect("known");
        let counted = not_closed.iter().find(|(a, _)| a == agent).map(|(_, s)| *s);
        assert_eq!(
            counted.unwrap_or(CircuitState::Closed),
            read.snapshot.state,
            "{agent}"
        );
    }

    // A closed agent whose keys are gone leaves the set at a sweep.
    let mut conn = redis::cluster::ClusterClient::new(cluster.urls())
        .expect("cluster client")
        .get_async_connection()
        .await
        .expect("connect");
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}:{{census-5}}:state"))
        .query_async(&mut conn)
        .await
        .expect("DEL");
    assert_eq!(store.sweep_idle(&config).await.expect("sweep"), 1);
    let census = store.census(&[]).await.expect("census").expect("a census");
    assert_eq!(census.total, 5);
}
