//! A force with a TTL on an idle agent: its `force_expired` webhook comes
//! on time, once (issue 11.5: it used to come with the next call).

use std::time::{Duration, Instant};

use fleet_breaker::{ForceMode, TransitionReason};

use crate::common::{WAIT, breaker, hooks, known, store, wait_all_acked};
use crate::receiver::Receiver;
use crate::support::{TestRedis, unique_prefix, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_force_expired_webhook_of_an_idle_agent_comes_on_time_once() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("alerts-force-expiry");
    let store = store(&redis, &prefix).await;
    let receiver = Receiver::start().await;
    let hooks = hooks([receiver.url()]).consumer("pod-a").build().unwrap();
    let delivering = hooks.spawn_redis(&store).await.unwrap();
    // Two pods: both fire at the expiry, one transition results.
    let pods = [breaker(&store), breaker(&store)];
    let agent = fleet_breaker::AgentId::new("agent-1").unwrap();
    known(&pods[0], &agent).await;
    for pod in &pods {
        let pod = pod.clone();
        wait_until("the pod's subscription is up", WAIT, || {
            let pod = pod.clone();
            async move { pod.is_watching() }
        })
        .await;
    }

    let ttl = Duration::from_secs(1);
    let forced_at = Instant::now();
    pods[0]
        .force(&agent, ForceMode::Open, Some(ttl))
        .await
        .expect("force");
    let expired = || {
        receiver
            .accepted()
            .into_iter()
            .filter_map(|r| r.transition)
            .filter(|t| t.reason == TransitionReason::ForceExpired)
            .count()
    };
    wait_until("the force_expired webhook arrives", ttl + WAIT, || async {
        expired() >= 1
    })
    .await;
    let took = forced_at.elapsed();
    println!("force_expired webhook {took:?} after a {ttl:?} force");
    assert!(
        took <= ttl + Duration::from_secs(1),
        "the webhook came {took:?} after the force, over 1 s past its TTL"
    );
    wait_all_acked(&redis, &prefix, &receiver.url()).await;
    assert_eq!(expired(), 1, "one webhook for one expiry");
    delivering.shutdown().await;
}
