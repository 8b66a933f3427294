//! Messages anyone with access to the Redis can `PUBLISH` on
//! `PREFIX:events`: an impossible generation, another epoch, agent ids the
//! store does not know. None may silence an agent's feed or make metric
//! series.

use axum::body::{Body, to_bytes};
use axum::http::Request;
use fleet_breaker::http::{self, AppState, Metrics};
use fleet_breaker::router::FailoverRouter;
use fleet_breaker::{AgentId, CircuitState, ForceMode, Transition};
use tower::ServiceExt;

use crate::flush::{flap, next_of, watching_pod};
use crate::support::{TestRedis, unique_prefix, wait_until};

/// `PUBLISH PREFIX:events` of `t` as JSON, with `epoch` left out when
/// `None` (as a publisher older than epochs sends it).
async fn forge(redis: &TestRedis, prefix: &str, t: &Transition, epoch: Option<u64>) {
    let mut json = serde_json::to_value(t).unwrap();
    match epoch {
        Some(epoch) => json["epoch"] = epoch.into(),
        None => {
            json.as_object_mut().unwrap().remove("epoch");
        }
    }
    let receivers: u64 = redis::cmd("PUBLISH")
        .arg(format!("{prefix}:events"))
        .arg(json.to_string())
        .query_async(&mut redis.connection().await)
        .await
        .unwrap();
    assert!(receivers >= 1, "the pod's watcher is subscribed");
}

/// One agent at generation 2 (its two transitions read from the feed),
/// then the forged messages `forged(real transition)`, then two real
/// transitions more: the feed must give generations 3 and 4 of the real
/// epoch, and the pod's cache must follow them.
async fn real_transitions_come_through_after(
    test: &str,
    forged: impl AsyncFnOnce(&TestRedis, &str, &Transition),
) {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix(test);
    let pod = watching_pod(&redis, &prefix).await;
    let mut feed = Box::pin(pod.subscribe());
    let agent = AgentId::new("agent-forged").unwrap();
    pod.acquire(&agent).await.unwrap().success().await;
    flap(&pod, &agent, 1).await;
    next_of(&mut feed, &agent).await;
    let real = next_of(&mut feed, &agent).await;
    assert_eq!(real.generation, 2);

    forged(&redis, &prefix, &real).await;
    flap(&pod, &agent, 1).await;

    let third = next_of(&mut feed, &agent).await;
    let fourth = next_of(&mut feed, &agent).await;
    assert_eq!(
        [
            (third.generation, third.epoch),
            (fourth.generation, fourth.epoch)
        ],
        [(3, real.epoch), (4, real.epoch)]
    );
    let cache = pod.cache().unwrap();
    wait_until(
        "the cache follows the real generations",
        crate::flush::WAIT,
        || async { cache.generation(&agent) == Some(4) },
    )
    .await;
    assert_eq!(cache.state(&agent), Some(CircuitState::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_maximal_generation_does_not_silence_the_agent() {
    real_transitions_come_through_after("forged-max", async |redis, prefix, real| {
        let forged = Transition {
            generation: 9_007_199_254_740_991,
            to: CircuitState::ForcedOpen,
            ..real.clone()
        };
        forge(redis, prefix, &forged, Some(real.epoch)).await;
        forge(redis, prefix, &forged, None).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_transition_of_another_epoch_does_not_silence_the_agent() {
    real_transitions_come_through_after("forged-epoch", async |redis, prefix, real| {
        for generation in [1, 3, 10] {
            let forged = Transition {
                generation,
                to: CircuitState::ForcedOpen,
                ..real.clone()
            };
            forge(redis, prefix, &forged, Some(real.epoch + 1)).await;
        }
    })
    .await;
}

/// Forged agent ids published in [`forged_agent_ids_make_no_metric_series`].
const FORGED: usize = 2_000;

/// `GET /metrics` of `app` as text.
async fn metrics_text(app: &axum::Router) -> String {
    let response = app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let bytes = to_bytes(response.into_body(), 1 << 24).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_agent_ids_make_no_metric_series() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("forged-ids");
    let pod = watching_pod(&redis, &prefix).await;
    let metrics = Metrics::new();
    metrics.watch(&pod);
    let app =
        http::router(AppState::new(FailoverRouter::new(pod.clone())).with_metrics(metrics.clone()));
    let real = AgentId::new("agent-real").unwrap();
    pod.acquire(&real).await.unwrap().success().await;
    let opened = pod.force(&real, ForceMode::Open, None).await.unwrap();

    for n in 0..FORGED {
        let forged = Transition {
            agent_id: AgentId::new(&format!("forged-{n}")).unwrap(),
            generation: 1,
            ..opened.clone()
        };
        forge(&redis, &prefix, &forged, Some(opened.epoch)).await;
    }
    // Published after the forged ones: once it is counted, they were read.
    pod.force(&real, ForceMode::Auto, None).await.unwrap();
    wait_until(
        "the real transitions are counted",
        crate::flush::WAIT,
        || async {
            metrics_text(&app)
                .await
                .contains(r#"agent="agent-real",from="forced_open""#)
        },
    )
    .await;

    let text = metrics_text(&app).await;
    println!(
        "/metrics is {} bytes after {FORGED} forged agent ids",
        text.len()
    );
    assert!(
        !text.contains("forged-"),
        "no series for an agent the store does not know:\n{text}"
    );
}
