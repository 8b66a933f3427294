//! Sixteen pods race on agents spread over the three masters of a cluster:
//! the counts, probes and transitions are exactly those of one Redis.

use std::time::Duration;

use fleet_breaker::{BreakerConfig, BreakerStore, CircuitState, Permit};
use futures::StreamExt;
use futures::future::join_all;

use crate::common::{fleet, fleet_on_clock, id, open_by_racing_failures, published, store};
use crate::support::cluster::TestCluster;
use crate::support::fleet::{caches_hold_the_store_view, fleet_clock};
use crate::support::{init_tracing, unique_prefix, wait_until};

const PODS: usize = 16;

fn config() -> BreakerConfig {
    BreakerConfig::builder()
        .base_backoff(Duration::from_millis(40))
        .max_backoff(Duration::from_millis(200))
        .recovery_timeout(Duration::from_secs(10))
        .build()
        .expect("valid config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_pods_open_an_agent_on_each_master_after_exactly_five_failures() {
    init_tracing();
    let Some(cluster) = TestCluster::shared().await else {
        return;
    };
    let prefix = unique_prefix("cluster-open");
    // A backoff long enough for every pod to be asked while still open.
    let config = BreakerConfig::builder()
        .base_backoff(Duration::from_secs(4))
        .max_backoff(Duration::from_secs(10))
        .build()
        .expect("valid config");
    let pods = fleet(&cluster, &prefix, PODS, &config).await;
    let agents: Vec<_> = cluster
        .agents_on_every_master(1)
        .iter()
        .map(|a| id(a))
        .collect();

    join_all(
        agents
            .iter()
            .map(|agent| open_by_racing_failures(&pods, agent)),
    )
    .await;

    for agent in &agents {
        let snapshot = pods[3].snapshot(agent).await.unwrap();
        assert_eq!(snapshot.state, CircuitState::Open, "{agent}");
        assert_eq!(
            snapshot.failure_count, 5,
            "{agent}: stale failures not counted"
        );
        assert_eq!(snapshot.generation, 1, "{agent}");
        // A pod's watcher may sit on another node than the agent's master:
        // the cluster bus forwards the PUBLISH, one more hop, so each pod
        // is given a moment to hear it.
        for pod in &pods {
            let pod = pod.clone();
            let agent = agent.clone();
            wait_until(
                "every pod rejects the open agent",
                Duration::from_secs(2),
                || {
                    let pod = pod.clone();
                    let agent = agent.clone();
                    async move { pod.acquire(&agent).await.is_err() }
                },
            )
            .await;
        }
    }
    let mut opened: Vec<_> = published(&cluster, &prefix)
        .await
        .into_iter()
        .map(|t| (t.agent_id, t.from, t.to, t.generation))
        .collect();
    opened.sort_by(|a, b| (&a.0, a.3).cmp(&(&b.0, b.3)));
    let mut expected: Vec<_> = agents
        .iter()
        .map(|a| (a.clone(), CircuitState::Closed, CircuitState::Open, 1))
        .collect();
    expected.sort_by(|a, b| (&a.0, a.3).cmp(&(&b.0, b.3)));
    assert_eq!(
        opened, expected,
        "one opening per agent in the stream, on any node"
    );
    let store = store(&cluster, &prefix, Duration::from_secs(2)).await;
    let mut known = agents.clone();
    known.sort();
    assert_eq!(
        store.agents().await.unwrap(),
        known,
        "the registry spans the masters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_grants_exactly_three_probes_across_sixteen_pods_on_every_master() {
    init_tracing();
    let Some(cluster) = TestCluster::shared().await else {
        return;
    };
    let prefix = unique_prefix("cluster-probes");
    let clock = fleet_clock();
    let pods = fleet_on_clock(&cluster, &prefix, PODS, &config(), &clock).await;
    for name in cluster.agents_on_every_master(1) {
        let agent = &id(&name);
        open_by_racing_failures(&pods, agent).await;
        // Every pod knows of the opening, then the 60 ms backoff is over for
        // all of them at once.
        caches_hold_the_store_view(&pods, agent).await;
        clock.advance(Duration::from_millis(60));

        let granted = crate::support::fleet::acquire_at_once(&pods, agent, 4).await;
        assert_eq!(
            granted.len(),
            3,
            "{agent}: probe permits granted fleet-wide"
        );
        assert!(granted.iter().all(Permit::is_probe));
        join_all(granted.into_iter().map(Permit::success)).await;
        let snapshot = pods[9].snapshot(agent).await.unwrap();
        assert_eq!(snapshot.state, CircuitState::Closed, "{agent}");
        assert_eq!(snapshot.generation, 3, "{agent}");
    }
    let mut path: Vec<_> = published(&cluster, &prefix)
        .await
        .iter()
        .map(|t| (t.agent_id.to_string(), t.generation, t.from, t.to))
        .collect();
    path.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    assert_eq!(path.len(), 9, "three transitions per agent: {path:?}");
    for chunk in path.chunks(3) {
        let states: Vec<_> = chunk.iter().map(|t| (t.2, t.3)).collect();
        assert_eq!(
            states,
            [
                (CircuitState::Closed, CircuitState::Open),
                (CircuitState::Open, CircuitState::HalfOpen),
                (CircuitState::HalfOpen, CircuitState::Closed),
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_opened_by_one_pod_is_heard_and_rejected_locally_by_every_pod_whichever_master_owns_it()
 {
    init_tracing();
    let Some(cluster) = TestCluster::shared().await else {
        return;
    };
    let prefix = unique_prefix("cluster-coherence");
    let config = BreakerConfig::builder()
        .base_backoff(Duration::from_secs(20))
        .max_backoff(Duration::from_secs(60))
        .build()
        .unwrap();
    let pods = fleet(&cluster, &prefix, 8, &config).await;
    let agents: Vec<_> = cluster
        .agents_on_every_master(1)
        .iter()
        .map(|a| id(a))
        .collect();
    let mut heard: Vec<_> = pods.iter().map(|pod| Box::pin(pod.subscribe())).collect();
    for pod in &pods {
        let pod = pod.clone();
        wait_until(
            "every pod's subscription is up",
            Duration::from_secs(5),
            || {
                let pod = pod.clone();
                async move { pod.cache().unwrap().is_subscribed() }
            },
        )
        .await;
    }

    for agent in &agents {
        for _ in 0..5 {
            pods[0].acquire(agent).await.unwrap().failure("down").await;
        }
    }
    for (index, stream) in heard.iter_mut().enumerate() {
        let mut seen = Vec::new();
        while seen.len() < agents.len() {
            let transition = tokio::time::timeout(Duration::from_secs(2), stream.next())
                .await
                .unwrap_or_else(|_| panic!("pod {index} heard only {seen:?}"))
                .expect("stream open");
            assert_eq!(transition.to, CircuitState::Open);
            seen.push(transition.agent_id);
        }
        seen.sort();
        let mut expected = agents.clone();
        expected.sort();
        assert_eq!(
            seen, expected,
            "pod {index} heard every master's transition"
        );
    }

    // Every pod now rejects every agent from its cache: no store call.
    for (index, pod) in pods.iter().enumerate() {
        let misses = pod.cache().unwrap().stats().misses;
        for agent in &agents {
            assert!(pod.acquire(agent).await.is_err());
        }
        assert_eq!(
            pod.cache().unwrap().stats().misses,
            misses,
            "pod {index} rejected the open circuits locally"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_change_is_in_the_stream_and_on_pubsub_exactly_once_on_every_master() {
    init_tracing();
    let Some(cluster) = TestCluster::shared().await else {
        return;
    };
    let prefix = unique_prefix("cluster-once");
    let clock = fleet_clock();
    let pods = fleet_on_clock(&cluster, &prefix, PODS, &config(), &clock).await;
    let agents: Vec<_> = cluster
        .agents_on_every_master(1)
        .iter()
        .map(|a| id(a))
        .collect();
    // Plain PUBLISH reaches a subscriber on any node: listen on the last one.
    let listen = cluster.urls().last().cloned().expect("a node");
    let mut pubsub = redis::Client::open(listen)
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    pubsub.subscribe(format!("{prefix}:events")).await.unwrap();
    let mut messages = pubsub.into_on_message();

    // Per agent, two cycles of: race to open, move the fleet's clock past
    // the backoff, race for probes; in the first cycle the first round of
    // probes fails. (One agent's move of the clock only shortens another's
    // wait; the at most 1.8 s moved in all is far from the probes' 10 s
    // recovery timeout.)
    let clock = &clock;
    join_all(agents.iter().map(|agent| {
        let pods = &pods;
        async move {
            for cycle in 0..2 {
                open_by_racing_failures(pods, agent).await;
                for round in 0..2 {
                    // Every pod knows of the (re)opening; past the backoff
                    // (at most 200 ms).
                    caches_hold_the_store_view(pods, agent).await;
                    clock.advance(Duration::from_millis(200));
                    let probes = crate::support::fleet::acquire_at_once(pods, agent, 1).await;
                    assert_eq!(probes.len(), 3, "{agent} cycle {cycle} round {round}");
                    if cycle == 0 && round == 0 {
                        join_all(probes.into_iter().map(|p| p.failure("still down"))).await;
                    } else {
                        join_all(probes.into_iter().map(Permit::success)).await;
                        break;
                    }
                }
            }
        }
    }))
    .await;

    let transitions = published(&cluster, &prefix).await;
    for agent in &agents {
        let of_agent: Vec<_> = transitions
            .iter()
            .filter(|t| &t.agent_id == agent)
            .collect();
        let mut generations: Vec<u64> = of_agent.iter().map(|t| t.generation).collect();
        generations.sort_unstable();
        let last = pods[0].snapshot(agent).await.unwrap().generation;
        assert_eq!(
            generations,
            (1..=last).collect::<Vec<_>>(),
            "{agent}: one stream entry per generation, none twice, none missing"
        );
        assert_eq!(
            last, 8,
            "{agent}: open, half-open, open, half-open, closed; open, half-open, closed"
        );
    }
    let mut live = Vec::new();
    while live.len() < transitions.len() {
        let message = tokio::time::timeout(Duration::from_secs(2), messages.next())
            .await
            .expect("every transition is published")
            .expect("subscription open");
        let payload: String = message.get_payload().unwrap();
        live.push(serde_json::from_str::<fleet_breaker::Transition>(&payload).unwrap());
    }
    let key = |t: &fleet_breaker::Transition| (t.agent_id.clone(), t.generation);
    let mut live_keys: Vec<_> = live.iter().map(key).collect();
    let mut stream_keys: Vec<_> = transitions.iter().map(key).collect();
    live_keys.sort();
    stream_keys.sort();
    assert_eq!(
        live_keys, stream_keys,
        "pub/sub carried the same transitions"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), messages.next())
            .await
            .is_err(),
        "and nothing more"
    );
}
