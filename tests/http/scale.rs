//! What a big fleet needs of the service: one read of the store shared by
//! the requests that arrive while it is in flight, gzip answers (with the
//! event stream left streaming), and `/metrics` bounded by
//! `with_metrics_agents`.

use std::io::Read;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use fleet_breaker::http::{self, AppState, MetricsAgents};
use fleet_breaker::router::FailoverRouter;
use fleet_breaker::{CircuitBreaker, ForceMode, RedisStore};
use futures::StreamExt;
use futures::future::join_all;
use serde_json::Value;
use tower::ServiceExt;

use crate::support::proxy::FaultProxy;
use crate::support::{self, TestRedis};
use crate::{agent, embedded_app, get, send};

/// 20 requests that arrive while a read of the store is in flight share it,
/// though the read (through a proxy adding 100 ms each way) takes longer
/// than `health_max_age`: before, each found the last read too old and
/// made its own, one after another (issue 16: the last answered after 40 s
/// at 50,000 agents).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_health_requests_share_one_read_in_flight() {
    let redis = TestRedis::start().await;
    let prefix = support::unique_prefix("http_shared_read");
    let pod = CircuitBreaker::builder()
        .store(
            RedisStore::builder(redis.url())
                .prefix(&prefix)
                .build()
                .await
                .unwrap(),
        )
        .build()
        .unwrap();
    for i in 0..20 {
        pod.call(&agent(&format!("agent-{i:02}")), async {
            Ok::<_, std::io::Error>(())
        })
        .await
        .unwrap();
    }
    let proxy = FaultProxy::start(redis.port()).await;
    let serving = CircuitBreaker::builder()
        .store(
            RedisStore::builder(proxy.url())
                .prefix(&prefix)
                .timeout(Duration::from_secs(10))
                .build()
                .await
                .unwrap(),
        )
        .build()
        .unwrap();
    let app = http::router(
        AppState::new(FailoverRouter::new(serving)).with_health_max_age(Duration::from_millis(100)),
    );
    proxy.set_latency(Duration::from_millis(100));
    redis.reset_stats().await;

    let answers = join_all((0..20).map(|_| send(&app, get("/api/circuit-breaker/health")))).await;

    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["total_agents"], 20);
        assert_eq!(body, &answers[0].1, "one read for all");
    }
    let stats = redis.command_stats().await;
    assert_eq!(
        stats.get("sscan").copied(),
        Some(1),
        "one read of the agents set for 20 requests; commands: {stats:?}"
    );
    let (_, metrics) = send(&app, get("/metrics")).await;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("fleet_breaker_health_reads_total "),
        "{metrics}"
    );
}

fn gzip_get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn answers_are_gzipped_when_the_client_accepts_it() {
    let (app, _) = embedded_app().await;
    let (_, plain) = send(&app, get("/api/circuit-breaker/health")).await;
    for uri in [
        "/api/circuit-breaker/health",
        "/metrics",
        "/assets/render.js",
    ] {
        let response = app.clone().oneshot(gzip_get(uri)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_ENCODING)
                .map(|v| v.as_bytes()),
            Some(&b"gzip"[..]),
            "{uri}"
        );
        let zipped = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{uri}: not gzip: {e}"));
        if uri.ends_with("/health") {
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(body, plain);
        }
    }
    // No Accept-Encoding: as before.
    let response = app
        .clone()
        .oneshot(get("/api/circuit-breaker/health"))
        .await
        .unwrap();
    assert!(response.headers().get(header::CONTENT_ENCODING).is_none());
}

/// With `Accept-Encoding: gzip` the event stream is neither compressed nor
/// buffered: each transition arrives as it happens.
#[tokio::test]
async fn the_event_stream_streams_when_the_client_accepts_gzip() {
    let (app, breaker) = embedded_app().await;
    let response = app
        .clone()
        .oneshot(gzip_get("/api/circuit-breaker/events"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().get(header::CONTENT_ENCODING).is_none(),
        "{:?}",
        response.headers()
    );
    let mut body = response.into_body().into_data_stream();
    for (i, name) in ["agent-1", "agent-2"].into_iter().enumerate() {
        breaker
            .force(&agent(name), ForceMode::Open, None)
            .await
            .unwrap();
        let mut seen = String::new();
        while !seen.contains("\n\n") {
            let chunk = tokio::time::timeout(Duration::from_secs(3), body.next())
                .await
                .unwrap_or_else(|_| panic!("event {i} not delivered within 3 s"))
                .expect("the stream stays open")
                .unwrap();
            seen.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        assert!(seen.contains(&format!("\"agent_id\":\"{name}\"")), "{seen}");
    }
}

/// Three agents: `agent-1` and `agent-2` closed, `agent-3` forced open.
async fn metrics_app(agents: Option<MetricsAgents>) -> Router {
    let (_, breaker) = embedded_app().await;
    breaker
        .call(&agent("agent-3"), async { Ok::<_, std::io::Error>(()) })
        .await
        .unwrap();
    breaker
        .force(&agent("agent-3"), ForceMode::Open, None)
        .await
        .unwrap();
    let state = AppState::new(FailoverRouter::new(breaker));
    http::router(match agents {
        Some(agents) => state.with_metrics_agents(agents),
        None => state,
    })
}

async fn scrape(app: &Router) -> String {
    let (status, text) = send(app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    text.as_str().unwrap().to_owned()
}

fn reported(text: &str) -> Vec<&str> {
    let mut agents: Vec<&str> = ["agent-1", "agent-2", "agent-3"]
        .into_iter()
        .filter(|a| text.contains(&format!("fleet_breaker_generation{{agent=\"{a}\"}}")))
        .collect();
    agents.sort_unstable();
    agents
}

#[tokio::test]
async fn metrics_report_the_agents_the_setting_selects_and_every_total() {
    let at_most = |n| {
        Some(MetricsAgents::AtMost(
            std::num::NonZeroUsize::new(n).unwrap(),
        ))
    };
    for (agents, expected, unreported) in [
        (None, vec!["agent-3"], 2),
        (Some(MetricsAgents::NotClosed), vec!["agent-3"], 2),
        (
            Some(MetricsAgents::All),
            vec!["agent-1", "agent-2", "agent-3"],
            0,
        ),
        (at_most(1), vec!["agent-3"], 2),
        (at_most(2), vec!["agent-1", "agent-3"], 1),
        (at_most(5), vec!["agent-1", "agent-2", "agent-3"], 0),
    ] {
        let text = scrape(&metrics_app(agents).await).await;
        assert_eq!(reported(&text), expected, "{agents:?}");
        for total in [
            "fleet_breaker_agents 3",
            "fleet_breaker_open_circuits 1",
            "fleet_breaker_healthy_agents 2",
            &format!("fleet_breaker_agents_unreported {unreported}"),
        ] {
            assert!(text.contains(total), "{agents:?}: no {total} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}

/// `agent-000` to `agent-199` called once each, `agent-007`, `agent-070`
/// and `agent-170` forced open, on `redis`; a breaker that has called
/// nobody on the same store (so no flusher of its own sends scripts).
async fn two_hundred_agents_three_open(redis: &TestRedis, name: &str) -> CircuitBreaker {
    let prefix = support::unique_prefix(name);
    let store = RedisStore::builder(redis.url())
        .prefix(&prefix)
        .build()
        .await
        .unwrap();
    let pod = CircuitBreaker::builder()
        .store(store.clone())
        .build()
        .unwrap();
    for i in 0..200 {
        pod.call(&agent(&format!("agent-{i:03}")), async {
            Ok::<_, std::io::Error>(())
        })
        .await
        .unwrap();
    }
    for i in [7, 70, 170] {
        pod.force(&agent(&format!("agent-{i:03}")), ForceMode::Open, None)
            .await
            .unwrap();
    }
    // The pod's flusher would send scripts of its own: it goes, and a
    // service that has called nobody reads.
    pod.flush().await.unwrap();
    drop(pod);
    CircuitBreaker::builder().store(store).build().unwrap()
}

/// With the store's census the counts, a page of open agents and
/// `/metrics` read no closed agent: a few commands whatever the fleet's
/// size (issue 16: at 100,000 agents the counts took 7.4 s to read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counts_and_open_agents_are_read_without_reading_every_agent() {
    let redis = TestRedis::start().await;
    let serving = two_hundred_agents_three_open(&redis, "http_census").await;
    let app = http::router(AppState::new(FailoverRouter::new(serving)));
    redis.reset_stats().await;

    let (status, summary) = send(&app, get("/api/circuit-breaker/health/summary")).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(
        (
            &summary["total_agents"],
            &summary["open_circuits"],
            &summary["healthy_agents"]
        ),
        (&200.into(), &3.into(), &197.into())
    );
    let (_, first) = send(&app, get("/api/circuit-breaker/health?state=open&limit=2")).await;
    let ids = |page: &Value| {
        page["agents"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ["agent-007", "agent-070"]);
    assert_eq!(first["next"], "agent-070");
    assert_eq!(first["open_circuits"], 3);
    let (_, second) = send(
        &app,
        get("/api/circuit-breaker/health?state=open&limit=2&after=agent-070"),
    )
    .await;
    assert_eq!(ids(&second), ["agent-170"]);
    assert_eq!(second["next"], Value::Null);
    let (_, metrics) = send(&app, get("/metrics")).await;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(r#"fleet_breaker_circuit_state{agent="agent-170",state="forced_open"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("fleet_breaker_agents_unreported 197"),
        "{metrics}"
    );

    let stats = redis.command_stats().await;
    assert_eq!(
        stats.get("sscan"),
        None,
        "no read of the agents set: {stats:?}"
    );
    assert_eq!(
        (stats.get("evalsha"), stats.get("fcall")),
        (None, None),
        "no script: {stats:?}"
    );
    // The census once per request (and once per read of agents, which
    // checks it), plus one HGETALL per open agent read.
    let hgetall = stats.get("hgetall").copied().unwrap_or(0);
    assert!(hgetall <= 4 + 2 + 3 + 3 + 2, "{hgetall} HGETALL: {stats:?}");
}

/// `--metrics-agents N` bounds what a scrape reads, not only what it
/// writes: the tripped agents from the census, then closed ones in id
/// order up to N, each read alone (before: every agent was read, 1.5 s
/// at 100,000 agents).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_at_most_n_reads_at_most_n_agents() {
    let redis = TestRedis::start().await;
    let serving = two_hundred_agents_three_open(&redis, "http_at_most").await;
    let at_most = MetricsAgents::AtMost(std::num::NonZeroUsize::new(5).unwrap());
    let app =
        http::router(AppState::new(FailoverRouter::new(serving)).with_metrics_agents(at_most));
    redis.reset_stats().await;

    let (status, metrics) = send(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = metrics.as_str().unwrap();
    let reported: Vec<String> = (0..200)
        .map(|i| format!("agent-{i:03}"))
        .filter(|a| metrics.contains(&format!("fleet_breaker_generation{{agent=\"{a}\"}}")))
        .collect();
    assert_eq!(
        reported,
        [
            "agent-000",
            "agent-001",
            "agent-007",
            "agent-070",
            "agent-170"
        ]
    );
    for total in [
        "fleet_breaker_agents 200",
        "fleet_breaker_open_circuits 3",
        "fleet_breaker_agents_unreported 195",
    ] {
        assert!(metrics.contains(total), "no {total} in\n{metrics}");
    }
    let stats = redis.command_stats().await;
    // One HMGET of the state and one HGETALL of the settings per agent
    // reported, and the census's HGETALL; a loaded machine has seen a few
    // more HGETALL from the breakers' background reads, never one per
    // agent of the fleet (the old code: 200 HMGET, 201 HGETALL).
    let count = |command| stats.get(command).copied().unwrap_or(0);
    assert!(count("hmget") <= 5, "{stats:?}");
    assert!(count("hgetall") <= 20, "{stats:?}");
    assert_eq!(
        (stats.get("evalsha"), stats.get("fcall")),
        (None, None),
        "no script: {stats:?}"
    );
}
