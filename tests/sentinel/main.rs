//! The breaker through Sentinel: one master, one replica and three
//! sentinels on loopback; the master is killed and the breaker follows the
//! failover to the promoted replica.

#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use fleet_breaker::{
    AgentId, BreakerConfig, CircuitBreaker, CircuitState, RedisStore, RedisTarget, StorePolicy,
};
use futures::StreamExt;
use futures::future::join_all;

use support::fleet::all_recovered;
use support::sentinel::{MASTER_NAME, TestSentinel};
use support::{init_tracing, procs, unique_prefix, wait_until};

const TIMEOUT: Duration = Duration::from_millis(100);

fn commandstat(port: u16, command: &str) -> u64 {
    procs::text(&procs::local(port), &["INFO", "commandstats"])
        .lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_follows_a_sentinel_failover_to_the_promoted_replica() {
    init_tracing();
    let Some(mut setup) = TestSentinel::start().await else {
        return;
    };
    let target = RedisTarget::Sentinel {
        sentinels: setup.sentinel_urls(),
        master_name: MASTER_NAME.to_owned(),
    };
    let prefix = unique_prefix("sentinel-failover");
    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .base_backoff(Duration::from_secs(20))
        .max_backoff(Duration::from_secs(60))
        .build()
        .unwrap();
    let pods: Vec<CircuitBreaker> = join_all((0..3).map(|_| async {
        let store = RedisStore::builder_for(target.clone())
            .prefix(&prefix)
            .timeout(TIMEOUT)
            .build()
            .await
            .expect("connect through the sentinels");
        CircuitBreaker::builder()
            .store(store)
            .config(config)
            .policy(StorePolicy::FailLocal)
            .max_staleness(Duration::from_millis(500))
            .build()
            .unwrap()
    }))
    .await;
    let mut heard: Vec<_> = pods.iter().map(|pod| Box::pin(pod.subscribe())).collect();
    let subscribed = |pods: Vec<CircuitBreaker>, what: &'static str| async move {
        for pod in pods {
            wait_until(what, Duration::from_secs(10), || {
                let pod = pod.clone();
                async move { pod.cache().unwrap().is_subscribed() }
            })
            .await;
        }
    };
    subscribed(pods.clone(), "every pod's subscription is up").await;

    let opened = AgentId::new("agent-open").unwrap();
    let closed = AgentId::new("agent-closed").unwrap();
    for _ in 0..2 {
        pods[0]
            .acquire(&opened)
            .await
            .unwrap()
            .failure("down")
            .await;
    }
    pods[0].acquire(&closed).await.unwrap().success().await;
    for stream in &mut heard {
        let t = tokio::time::timeout(Duration::from_secs(2), stream.next())
            .await
            .expect("every pod hears the opening")
            .unwrap();
        assert_eq!(
            (t.agent_id.as_str(), t.to),
            ("agent-open", CircuitState::Open)
        );
    }

    let (old_master, replica) = (setup.initial_master(), setup.initial_replica());
    procs::command(&procs::local(old_master), &["WAIT", "1", "1000"]).expect("WAIT");
    setup.kill(old_master);
    let killed_at = Instant::now();

    // The subscriptions die, the cache stops being trusted, store calls
    // fail: every pod degrades, and each call stays bounded meanwhile.
    for pod in &pods {
        let pod = pod.clone();
        let closed = closed.clone();
        wait_until("every pod degrades", Duration::from_secs(5), || {
            let pod = pod.clone();
            let closed = closed.clone();
            async move {
                let started = Instant::now();
                if let Ok(permit) = pod.acquire(&closed).await {
                    permit.success().await;
                }
                assert!(started.elapsed() < TIMEOUT * 3 + Duration::from_millis(50));
                pod.is_degraded()
            }
        })
        .await;
    }
    wait_until(
        "the sentinels promote the replica",
        Duration::from_secs(20),
        || {
            let promoted = setup.master_port() == Some(replica);
            async move { promoted }
        },
    )
    .await;
    println!(
        "sentinels named the replica {:?} after the kill",
        killed_at.elapsed()
    );
    all_recovered(&pods, Duration::from_secs(10)).await;
    println!(
        "every pod recovered {:?} after the kill",
        killed_at.elapsed()
    );

    // The promoted replica holds the state, and serves the function
    // library, which reached it by replication.
    let snapshot = pods[1].snapshot(&opened).await.unwrap();
    assert_eq!(
        (snapshot.state, snapshot.generation),
        (CircuitState::Open, 1)
    );
    assert!(
        commandstat(replica, "fcall") >= 1,
        "the new master ran the store's functions"
    );

    // The watchers followed the failover: a transition made on the new
    // master reaches every pod.
    subscribed(pods.clone(), "every pod subscribes to the new master").await;
    pods[2].reset(&opened).await.unwrap();
    for (index, stream) in heard.iter_mut().enumerate() {
        loop {
            let t = tokio::time::timeout(Duration::from_secs(3), stream.next())
                .await
                .unwrap_or_else(|_| panic!("pod {index} hears the reset on the new master"))
                .unwrap();
            if t.agent_id == opened && t.to == CircuitState::Closed {
                assert_eq!(t.generation, 2);
                break;
            }
        }
    }
    for pod in &pods {
        assert!(pod.acquire(&opened).await.is_ok());
    }
}
