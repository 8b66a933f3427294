//! The trip policies on a 3-master cluster: the window, the quorum and an
//! agent's own settings live in the agent's slot, so every master decides
//! its agents exactly as one Redis does.

use std::time::Duration;

use fleet_breaker::config::AgentSettings;
use fleet_breaker::store::StoreExt;
use fleet_breaker::{BreakerConfig, CircuitState, Permit, RejectCause, TransitionReason};
use futures::future::join_all;

use crate::common::{fleet, id, published};
use crate::support::cluster::TestCluster;
use crate::support::{init_tracing, unique_prefix, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleets_failure_rate_trips_an_agent_on_every_master_once() {
    init_tracing();
    let Some(cluster) = TestCluster::shared().await else {
        return;
    };
    let prefix = unique_prefix("cluster-rate");
    let config = BreakerConfig::builder()
        .failure_threshold(1_000)
        .failure_rate_threshold(Some(0.5))
        .minimum_calls(16)
        .base_backoff(Duration::from_secs(4))
        .max_backoff(Duration::from_secs(10))
        .build()
        .unwrap();
    let pods = fleet(&cluster, &prefix, 8, &config).await;
    let agents: Vec<_> = cluster
        .agents_on_every_master(1)
        .iter()
        .map(|a| id(a))
        .collect();
    for agent in &agents {
        // Two rounds of 8 calls, half failing: 8 of 16, 50%.
        for _ in 0..2 {
            let permits: Vec<Permit> = join_all(pods.iter().map(|pod| pod.acquire(agent)))
                .await
                .into_iter()
                .map(|p| p.expect("closed"))
                .collect();
            join_all(permits.into_iter().enumerate().map(|(i, p)| async move {
                if i % 2 == 0 {
                    p.failure("down").await;
                } else {
                    p.success().await;
                }
            }))
            .await;
        }
        // Successes counted locally on a clean circuit reach the window
        // by a flush: the flush that brings it to 16 calls trips it. Sent
        // now rather than waited for: the 1 s flush of a hot window needs
        // the pod to have heard the failure-count news, which a pod whose
        // subscription is still connecting misses (CI saw it once; then
        // the successes wait for the 10 s success flush).
        for pod in &pods {
            pod.flush().await.unwrap();
        }
        wait_until(
            &format!("{agent} open on the fleet's rate"),
            Duration::from_secs(5),
            || async { pods[1].snapshot(agent).await.unwrap().state == CircuitState::Open },
        )
        .await;
        let s = pods[1].snapshot(agent).await.unwrap();
        assert_eq!(s.generation, 1, "{agent}");
    }
    let transitions = published(&cluster, &prefix).await;
    assert_eq!(transitions.len(), agents.len(), "{transitions:?}");
    assert!(
        transitions
            .iter()
            .all(|t| t.reason == TransitionReason::FailureRate)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_the_quorum_work_in_the_agents_slot() {
    init_tracing();
    let Some(cluster) = TestCluster::shared().await else {
        return;
    };
    let prefix = unique_prefix("cluster-quorum");
    let config = BreakerConfig::builder()
        .base_backoff(Duration::from_secs(4))
        .max_backoff(Duration::from_secs(10))
        .build()
        .unwrap();
    let pods = fleet(&cluster, &prefix, 3, &config).await;
    for agent in cluster.agents_on_every_master(1).iter().map(|a| id(a)) {
        pods[0]
            .store()
            .configure(
                &config,
                &agent,
                &AgentSettings {
                    min_reporting_pods: Some(2),
                    failure_threshold: Some(3),
                    ..AgentSettings::default()
                },
            )
            .await
            .expect("settings stored on the agent's master");
        for _ in 0..3 {
            pods[0]
                .acquire(&agent)
                .await
                .unwrap()
                .failure("sick pod")
                .await;
        }
        let s = pods[2].snapshot(&agent).await.unwrap();
        assert_eq!(s.state, CircuitState::Closed, "{agent}: one pod, no trip");
        assert_eq!(s.settings.min_reporting_pods, Some(2));
        let rejected = pods[0].acquire(&agent).await.expect_err("open on pod 0");
        assert_eq!(rejected.cause, RejectCause::LocalQuorum);
        pods[1].acquire(&agent).await.unwrap().failure("down").await;
        let s = pods[2].snapshot(&agent).await.unwrap();
        assert_eq!(s.state, CircuitState::Open, "{agent}: two pods trip it");
    }
}
