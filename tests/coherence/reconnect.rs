//! Losing the subscription, and Redis itself, while transitions happen.

use std::time::Duration;

use fleet_breaker::{AgentId, CircuitState, ForceMode};
use redis::AsyncCommands;

use crate::fleet::{MAX_STALENESS, fleet, warm};
use crate::support::{TestRedis, unique_prefix, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_replay_what_they_missed_while_their_subscription_was_killed() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("coherence-kill");
    let pods = fleet(&redis, &prefix, 4).await;
    let agent = AgentId::new("agent-1").unwrap();
    warm(&pods, &agent).await;

    let mut admin = redis.connection().await;
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 4, "every pod's subscription");
    // Transitions while the pods are reconnecting.
    pods[0].force(&agent, ForceMode::Open, None).await.unwrap();
    pods[0]
        .force(&agent, ForceMode::Closed, None)
        .await
        .unwrap();
    let last = pods[0].force(&agent, ForceMode::Open, None).await.unwrap();
    assert_eq!(last.generation, 3);

    for pod in &pods {
        let (pod, agent) = (pod.clone(), agent.clone());
        wait_until("each pod catches up", Duration::from_secs(5), || {
            let (pod, agent) = (pod.clone(), agent.clone());
            async move {
                let cache = pod.cache().unwrap();
                cache.is_subscribed() && cache.generation(&agent) == Some(3)
            }
        })
        .await;
        assert_eq!(
            pod.cache().unwrap().state(&agent),
            Some(CircuitState::ForcedOpen)
        );
        assert!(pod.acquire(&agent).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_stops_trusting_its_cache_while_disconnected() {
    let mut redis = TestRedis::start().await;
    if !redis.is_owned() {
        eprintln!("skipped: REDIS_URL is not a server this test may stop");
        return;
    }
    let prefix = unique_prefix("coherence-down");
    let pods = fleet(&redis, &prefix, 1).await;
    let agent = AgentId::new("agent-1").unwrap();
    warm(&pods, &agent).await;
    let cache = pods[0].cache().unwrap().clone();
    assert!(cache.is_subscribed());
    let handle = pods[0].agent(&agent);
    let permit = handle.try_acquire().expect("decided here").unwrap();
    permit.try_success().expect("counted here");

    redis.kill();
    let started = std::time::Instant::now();
    let watched = cache.clone();
    wait_until("the cache stops being trusted", MAX_STALENESS * 2, || {
        let cache = watched.clone();
        async move { !cache.is_subscribed() }
    })
    .await;
    assert!(started.elapsed() <= MAX_STALENESS + Duration::from_millis(200));
    assert!(
        pods[0].try_acquire(&agent).is_none() && handle.try_acquire().is_none(),
        "an untrusted cache decides nothing alone"
    );

    // Redis comes back empty: the watcher reconnects, the cache was cleared,
    // and the pod decides with the fresh state.
    redis.restart().await;
    let pod = pods[0].clone();
    wait_until("the pod watches again", Duration::from_secs(5), || {
        let pod = pod.clone();
        async move { pod.is_watching() && pod.cache().unwrap().is_subscribed() }
    })
    .await;
    let permit = pods[0]
        .acquire(&agent)
        .await
        .expect("admitted after the restart");
    assert!(!permit.is_degraded());
    permit.failure("x").await;
    let snapshot = pods[0].snapshot(&agent).await.unwrap();
    assert_eq!(
        (snapshot.generation, snapshot.failure_count),
        (0, 1),
        "state recreated from scratch"
    );
    let mut conn = redis.connection().await;
    let members: Vec<String> = conn.smembers(format!("{prefix}:agents")).await.unwrap();
    assert_eq!(members, vec!["agent-1".to_owned()], "re-registered");
}
