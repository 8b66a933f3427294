//! Probes, the dashboard, metrics, SSE, a real Redis, and the health copy.

use std::time::Duration;

use axum::body::to_bytes;
use axum::http::{StatusCode, header};
use fleet_breaker::http::{self, AdminToken, AppState};
use fleet_breaker::router::FailoverRouter;
use fleet_breaker::{CircuitBreaker, RedisStore};
use futures::StreamExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::support::{self, TestRedis};
use crate::{TOKEN, admin_post, agent, embedded_app, error_of, get, send};

#[tokio::test]
async fn probes_and_dashboard() {
    let (app, _) = embedded_app().await;
    let (status, body) = send(&app, get("/healthz")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = send(&app, get("/readyz")).await;
    assert_eq!(
        (status, body["store"].as_str()),
        (StatusCode::OK, Some("memory"))
    );
    let response = app.clone().oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let page = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let page = String::from_utf8(page.to_vec()).unwrap();
    assert!(
        page.contains("/assets/dashboard.js"),
        "the page loads its script"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no outside host"
    );
    for asset in [
        "/assets/dashboard.js",
        "/assets/api.js",
        "/assets/render.js",
        "/assets/agentlist.js",
        "/assets/transitions.js",
        "/assets/admin.js",
        "/assets/util.js",
        "/assets/dashboard.css",
        "/assets/agents.css",
        "/assets/transitions.css",
    ] {
        assert_eq!(send(&app, get(asset)).await.0, StatusCode::OK, "{asset}");
    }
}

#[tokio::test]
async fn metrics_report_agents_transitions_and_the_store() {
    let (_, breaker) = embedded_app().await;
    let metrics = http::Metrics::new();
    metrics.watch(&breaker);
    let app_with_metrics = http::router(
        AppState::new(FailoverRouter::new(breaker.clone()))
            .with_metrics(metrics.clone())
            .with_metrics_agents(http::MetricsAgents::All),
    );
    breaker
        .force(&agent("agent-1"), fleet_breaker::ForceMode::Open, None)
        .await
        .unwrap();
    support::wait_until("the transition is counted", Duration::from_secs(2), || {
        let app = app_with_metrics.clone();
        async move {
            let (_, text) = send(&app, get("/metrics")).await;
            text.as_str().unwrap().contains(
                "fleet_breaker_transitions_total{agent=\"agent-1\",from=\"closed\",to=\"forced_open\"} 1",
            )
        }
    })
    .await;
    let (status, text) = send(&app_with_metrics, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap();
    for series in [
        "fleet_breaker_circuit_state{agent=\"agent-1\",state=\"forced_open\"} 1",
        "fleet_breaker_circuit_state{agent=\"agent-2\",state=\"closed\"} 1",
        "fleet_breaker_open_circuits 1",
        "fleet_breaker_healthy_agents 1",
        "fleet_breaker_store_up 1",
        "fleet_breaker_store_degraded 0",
        "fleet_breaker_success_count{agent=\"agent-2\"} 1",
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn sse_streams_each_transition() {
    let (app, breaker) = embedded_app().await;
    let response = app
        .clone()
        .oneshot(get("/api/circuit-breaker/events"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body().into_data_stream();
    breaker
        .force(&agent("agent-2"), fleet_breaker::ForceMode::Open, None)
        .await
        .unwrap();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !seen.contains("\n\n") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("an event within 3 s")
            .expect("the stream stays open")
            .unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(seen.starts_with("event: transition\ndata: "), "{seen}");
    let data: Value =
        serde_json::from_str(seen.lines().nth(1).unwrap().trim_start_matches("data: ")).unwrap();
    assert_eq!(data["agent_id"], "agent-2");
    assert_eq!(data["to"], "forced_open");
}

#[tokio::test]
async fn the_token_never_shows_in_debug_output() {
    let state = AppState::new(FailoverRouter::new(CircuitBreaker::in_memory()))
        .with_admin_token(Some(AdminToken::new(TOKEN).unwrap()));
    let debug = format!("{state:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains("set"), "{debug}");
}

/// A service over a real Redis: readiness follows the server, and the
/// answers come from the shared store (another pod's calls show).
#[tokio::test]
async fn on_redis_readiness_follows_the_server() {
    let mut redis = TestRedis::start().await;
    if !redis.is_owned() {
        eprintln!("skipped: needs a redis-server this test can stop");
        return;
    }
    let prefix = support::unique_prefix("http_readyz");
    let store = |url: String, prefix: String| async move {
        RedisStore::builder(url)
            .prefix(prefix)
            .build()
            .await
            .unwrap()
    };
    let pod = CircuitBreaker::builder()
        .store(store(redis.url(), prefix.clone()).await)
        .build()
        .unwrap();
    pod.call(&agent("agent-7"), async { Ok::<_, std::io::Error>(()) })
        .await
        .unwrap();
    let serving = CircuitBreaker::builder()
        .store(store(redis.url(), prefix.clone()).await)
        .build()
        .unwrap();
    let app = http::router(
        AppState::new(FailoverRouter::new(serving))
            .with_admin_token(Some(AdminToken::new(TOKEN).unwrap())),
    );
    let (status, body) = send(&app, get("/api/circuit-breaker/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["agents"]["agent-7"]["metrics"]["success_count"], 1);
    assert_eq!(send(&app, get("/readyz")).await.0, StatusCode::OK);

    redis.kill();
    let (status, body) = send(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !error_of(&body).contains("127.0.0.1"),
        "no internals: {body}"
    );
    assert_eq!(send(&app, get("/healthz")).await.0, StatusCode::OK);
    let (status, body) = send(
        &app,
        admin_post("/api/circuit-breaker/reset/agent-7", Some(TOKEN), None),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    redis.restart().await;
    support::wait_until("readyz answers 200 again", Duration::from_secs(3), || {
        let app = app.clone();
        async move { send(&app, get("/readyz")).await.0 == StatusCode::OK }
    })
    .await;
}

/// One read of the health serves every request within `health_max_age`;
/// a transition drops it at once.
#[tokio::test]
async fn the_health_copy_is_kept_until_a_transition() {
    let (_, breaker) = embedded_app().await;
    let app = http::router(
        AppState::new(FailoverRouter::new(breaker.clone()))
            .with_health_max_age(Duration::from_secs(60)),
    );
    let (_, first) = send(&app, get("/api/circuit-breaker/health")).await;
    assert_eq!(first["agents"]["agent-2"]["metrics"]["success_count"], 1);

    // A success is no transition: the copy stands.
    breaker
        .call(&agent("agent-2"), async { Ok::<_, std::io::Error>(()) })
        .await
        .unwrap();
    let (_, second) = send(&app, get("/api/circuit-breaker/health")).await;
    assert_eq!(second, first, "served from the copy");

    // A transition made elsewhere (not through this API) drops it.
    breaker
        .force(&agent("agent-1"), fleet_breaker::ForceMode::Open, None)
        .await
        .unwrap();
    support::wait_until(
        "the health shows the forced circuit",
        Duration::from_secs(2),
        || {
            let app = app.clone();
            async move {
                let (_, body) = send(&app, get("/api/circuit-breaker/health")).await;
                body["open_circuits"] == 1
                    && body["agents"]["agent-2"]["metrics"]["success_count"] == 2
            }
        },
    )
    .await;

    let fresh_every_time = http::router(
        AppState::new(FailoverRouter::new(breaker.clone())).with_health_max_age(Duration::ZERO),
    );
    breaker
        .call(&agent("agent-2"), async { Ok::<_, std::io::Error>(()) })
        .await
        .unwrap();
    let (_, body) = send(&fresh_every_time, get("/api/circuit-breaker/health")).await;
    assert_eq!(body["agents"]["agent-2"]["metrics"]["success_count"], 3);
}
