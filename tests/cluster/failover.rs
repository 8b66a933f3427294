//! A master with a replica is killed under the fleet: the replica is
//! promoted, the pods degrade and recover, and no agent ends wedged.

use std::time::{Duration, Instant};

use fleet_breaker::{BreakerConfig, CircuitBreaker, CircuitState, Permit, StorePolicy};
use futures::future::join_all;

use crate::common::{id, store};
use crate::support::cluster::TestCluster;
use crate::support::fleet::all_recovered;
use crate::support::{init_tracing, procs, unique_prefix, wait_for, wait_until};

const TIMEOUT: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_is_replaced_by_its_replica_and_the_pods_degrade_then_recover() {
    init_tracing();
    let Some(mut cluster) = TestCluster::owned(3, 1).await else {
        return;
    };
    let prefix = unique_prefix("cluster-failover");
    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .base_backoff(Duration::from_millis(300))
        .max_backoff(Duration::from_secs(1))
        .recovery_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let pods: Vec<CircuitBreaker> = join_all((0..4).map(|_| async {
        CircuitBreaker::builder()
            .store(store(&cluster, &prefix, TIMEOUT).await)
            .config(config)
            .policy(StorePolicy::FailLocal)
            .local_cache(false)
            .build()
            .unwrap()
    }))
    .await;
    let agents: Vec<_> = cluster
        .agents_on_every_master(1)
        .iter()
        .map(|a| id(a))
        .collect();
    let victim = &agents[0];
    let slot = cluster.slot(victim.as_str());
    let old_master = cluster.master_of(slot);

    // The victim open, with a probe in flight when its master dies.
    for _ in 0..2 {
        pods[0].acquire(victim).await.unwrap().failure("down").await;
    }
    // Rejected while the 450 ms backoff runs, then a probe.
    let in_flight: Permit = wait_for(
        "the victim's backoff ends and a probe is granted",
        Duration::from_secs(3),
        || async {
            match pods[1].acquire(victim).await {
                Ok(permit) => Some(permit),
                Err(rejected) => {
                    assert_eq!(rejected.state, CircuitState::Open, "{rejected}");
                    None
                }
            }
        },
    )
    .await;
    assert!(in_flight.is_probe());
    for agent in &agents[1..] {
        pods[2].acquire(agent).await.unwrap().success().await;
    }
    // The replica has every write before the kill.
    procs::command(&old_master, &["WAIT", "1", "1000"]).expect("WAIT");
    cluster.kill(&old_master);
    let killed_at = Instant::now();

    // The pods calling the victim degrade.
    for pod in &pods {
        let pod = pod.clone();
        let victim = victim.clone();
        wait_until("every pod degrades", Duration::from_secs(3), || {
            let pod = pod.clone();
            let victim = victim.clone();
            async move {
                let started = Instant::now();
                let _ = pod.acquire(&victim).await;
                assert!(started.elapsed() < TIMEOUT * 3 + Duration::from_millis(50));
                pod.is_degraded()
            }
        })
        .await;
    }
    let new_master = cluster
        .wait_failover(slot, &old_master, Duration::from_secs(15))
        .await;
    println!(
        "replica {new_master} took over slot {slot} {:?} after the kill",
        killed_at.elapsed()
    );
    all_recovered(&pods, Duration::from_secs(10)).await;
    println!(
        "all pods recovered {:?} after the kill",
        killed_at.elapsed()
    );

    // The promoted replica holds the victim's state; the lost probe's lease
    // lapses, and the agent closes again through its probes.
    let snapshot = pods[3].snapshot(victim).await.unwrap();
    assert!(snapshot.generation >= 2, "{snapshot:?}");
    drop(in_flight);
    wait_until(
        "the victim closes again through its probes",
        Duration::from_secs(5),
        || {
            let pods = pods.clone();
            let victim = victim.clone();
            async move {
                for pod in &pods {
                    if let Ok(permit) = pod.acquire(&victim).await {
                        permit.success().await;
                    }
                }
                pods[0].snapshot(&victim).await.unwrap().state == CircuitState::Closed
            }
        },
    )
    .await;
    // No agent is wedged: each still opens and rejects as the model says.
    for agent in &agents {
        for _ in 0..2 {
            pods[0].acquire(agent).await.unwrap().failure("down").await;
        }
        assert_eq!(
            pods[1].snapshot(agent).await.unwrap().state,
            CircuitState::Open,
            "{agent}"
        );
        assert!(pods[2].acquire(agent).await.is_err());
    }
}
