//! Per-agent settings over HTTP (`/api/circuit-breaker/config/{agent_id}`),
//! and the window and settings that health, `metrics()` and `/metrics`
//! show for an agent with a rate policy.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use fleet_breaker::breaker::WindowView;
use fleet_breaker::config::AgentSettings;
use fleet_breaker::http::{self, AdminToken, AppState, MetricsAgents};
use fleet_breaker::router::FailoverRouter;
use fleet_breaker::{
    AgentMetrics, BreakerConfig, CircuitBreaker, CircuitState, ManualClock, MemoryStore, Snapshot,
};
use serde_json::{Value, json};

use crate::{TOKEN, agent, embedded_app, error_of, get, send};

const URI: &str = "/api/circuit-breaker/config/agent-1";

fn put(uri: &str, token: Option<&str>, body: &str) -> Request<Body> {
    let mut request = Request::put(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

async fn put_ok(app: &Router, uri: &str, body: Value) -> Value {
    let (status, answer) = send(app, put(uri, Some(TOKEN), &body.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{body}: {answer}");
    answer
}

#[tokio::test]
async fn put_needs_the_admin_token_and_get_does_not() {
    let (app, breaker) = embedded_app().await;
    let body = r#"{"failure_threshold": 2}"#;
    let (status, answer) = send(&app, put(URI, None, body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let (status, _) = send(&app, put(URI, Some("wrong-token-0123456789"), body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        breaker
            .settings(&agent("agent-1"))
            .await
            .unwrap()
            .is_empty()
    );

    let open = http::router(AppState::new(FailoverRouter::new(breaker.clone())));
    let (status, answer) = send(&open, put(URI, Some(TOKEN), body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(error_of(&answer).contains("no admin token"), "{answer}");
    let (status, answer) = send(&open, get(URI)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["settings"], json!({}));
}

#[tokio::test]
async fn put_stores_get_shows_settings_and_effective_config_and_empty_clears() {
    let (app, breaker) = embedded_app().await;
    let answer = put_ok(
        &app,
        URI,
        json!({"failure_threshold": 2, "failure_rate_threshold": 0.5, "window_ms": 20000}),
    )
    .await;
    assert_eq!(answer["status"], "configured");
    assert_eq!(answer["settings"]["failure_threshold"], 2);

    let (status, shown) = send(&app, get(URI)).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["agent_id"], "agent-1");
    assert_eq!(
        shown["settings"],
        json!({"failure_threshold": 2, "failure_rate_threshold": 0.5, "window_ms": 20000})
    );
    assert_eq!(shown["effective"]["failure_threshold"], 2);
    assert_eq!(shown["effective"]["failure_rate_threshold"], 0.5);
    assert_eq!(shown["effective"]["window_ms"], 20000);
    // The fields not set are the process's.
    assert_eq!(shown["effective"]["half_open_max_calls"], 3);
    assert_eq!(shown["effective"]["base_backoff_ms"], 1000);
    // The other agent is untouched.
    let (_, other) = send(&app, get("/api/circuit-breaker/config/agent-2")).await;
    assert_eq!(other["settings"], json!({}));
    assert_eq!(other["effective"]["failure_threshold"], 5);

    // Health shows them on the agent's row.
    let (_, health) = send(&app, get("/api/circuit-breaker/health")).await;
    assert_eq!(
        health["agents"]["agent-1"]["settings"]["failure_threshold"],
        2
    );
    assert!(
        health["agents"]["agent-2"].get("settings").is_none(),
        "{health}"
    );

    let answer = put_ok(&app, URI, json!({})).await;
    assert_eq!(answer["status"], "cleared");
    assert!(
        breaker
            .settings(&agent("agent-1"))
            .await
            .unwrap()
            .is_empty()
    );
    let (_, shown) = send(&app, get(URI)).await;
    assert_eq!(shown["effective"]["failure_threshold"], 5);
    let (_, health) = send(&app, get("/api/circuit-breaker/health")).await;
    assert!(
        health["agents"]["agent-1"].get("settings").is_none(),
        "{health}"
    );
}

#[tokio::test]
async fn a_stored_threshold_is_the_one_the_breaker_trips_on() {
    let (app, breaker) = embedded_app().await;
    put_ok(&app, URI, json!({"failure_threshold": 2})).await;
    for _ in 0..2 {
        let permit = breaker.acquire(&agent("agent-1")).await.unwrap();
        permit.failure("boom").await;
    }
    let metrics = breaker.metrics(&agent("agent-1")).await.unwrap();
    assert_eq!(metrics.state, CircuitState::Open, "2 failures, not 5");
}

#[tokio::test]
async fn put_creates_an_agent_no_pod_has_called_and_get_of_an_unknown_one_is_404() {
    let (app, breaker) = embedded_app().await;
    let (status, answer) = send(&app, get("/api/circuit-breaker/config/agent-new")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(error_of(&answer).contains("agent-new"), "{answer}");
    put_ok(
        &app,
        "/api/circuit-breaker/config/agent-new",
        json!({"minimum_calls": 50}),
    )
    .await;
    let settings = breaker.settings(&agent("agent-new")).await.unwrap();
    assert_eq!(settings.minimum_calls, Some(50));
    let metrics = breaker.metrics(&agent("agent-new")).await.unwrap();
    assert_eq!(metrics.state, CircuitState::Closed);
}

#[tokio::test]
async fn an_invalid_value_is_a_400_naming_the_field_and_its_range_and_writes_nothing() {
    let (app, breaker) = embedded_app().await;
    put_ok(&app, URI, json!({"failure_threshold": 3})).await;
    let cases = [
        (
            json!({"failure_rate_threshold": 1.5}),
            "failure_rate_threshold",
            "at most 1",
        ),
        (
            json!({"min_reporting_pods": 0}),
            "min_reporting_pods",
            "from 1 to 64",
        ),
        (json!({"backoff_jitter": 0.9}), "backoff_jitter", "0 to 0.5"),
        (json!({"window_ms": 500}), "window", "1 s to 1 hour"),
        // Below the process's base backoff (1 s): named as the setting.
        (
            json!({"max_backoff_ms": 10}),
            "max_backoff_ms",
            "base_backoff",
        ),
        (
            json!({"slow_call_rate_threshold": 0.5}),
            "slow_call_rate_threshold",
            "slow_call_duration",
        ),
        (
            json!({"failure_threshold": 0}),
            "failure_threshold",
            "least 1",
        ),
    ];
    for (body, field, range) in cases {
        let (status, answer) = send(&app, put(URI, Some(TOKEN), &body.to_string())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = error_of(&answer);
        assert!(message.contains(field), "{body}: {message}");
        assert!(message.contains(range), "{body}: {message}");
    }
    let settings = breaker.settings(&agent("agent-1")).await.unwrap();
    assert_eq!(
        settings,
        AgentSettings {
            failure_threshold: Some(3),
            ..AgentSettings::default()
        },
        "a refused PUT leaves the stored settings"
    );
}

#[tokio::test]
async fn an_unknown_field_or_a_wrong_kind_is_a_400_naming_it() {
    let (app, _) = embedded_app().await;
    let cases = [
        // idle_ttl_ms is process-wide: not a per-agent setting.
        (r#"{"idle_ttl_ms": 1000}"#, "idle_ttl_ms"),
        (r#"{"failure_rate": 0.5}"#, "failure_rate"),
        (r#"{"failure_threshold": 2.5}"#, "failure_threshold"),
        (r#"{"minimum_calls": "20"}"#, "minimum_calls"),
        (r#"{"window_ms": -1}"#, "window_ms"),
        ("[1, 2]", "settings"),
        ("not json", "settings"),
    ];
    for (body, named) in cases {
        let (status, answer) = send(&app, put(URI, Some(TOKEN), body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = error_of(&answer);
        assert!(message.contains(named), "{body}: {message}");
    }
    let (status, answer) = send(
        &app,
        put("/api/circuit-breaker/config/bad%20id", Some(TOKEN), "{}"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

/// A breaker on an embedded store at store time 25.5 s whose `agent-r`
/// has a 50% failure-rate policy (stored for it) and 10 calls in its window,
/// 6 failed: 6 of 6 in bucket 17, 1 of 4 in bucket 25.
fn windowed_app() -> (Router, CircuitBreaker) {
    windowed_app_reporting(MetricsAgents::NotClosed)
}

fn windowed_app_reporting(agents: MetricsAgents) -> (Router, CircuitBreaker) {
    let clock = Arc::new(ManualClock::new(25_500));
    let store = MemoryStore::with_clock(clock);
    let config = BreakerConfig::default();
    let mut snapshot = Snapshot::fresh(&config);
    snapshot.settings.failure_rate_threshold = Some(0.5);
    snapshot.settings.minimum_calls = Some(100);
    let effective = snapshot.effective(&config);
    snapshot.window.count(&effective, 3_000, 9, 9, 0, "pod-a"); // aged by now
    snapshot.window.count(&effective, 17_000, 6, 5, 0, "pod-a");
    snapshot.window.count(&effective, 25_200, 4, 1, 0, "pod-b");
    store.seed(&agent("agent-r"), snapshot);
    store.seed(&agent("agent-plain"), Snapshot::fresh(&config));
    let breaker = CircuitBreaker::builder()
        .store(store)
        .config(config)
        .build()
        .unwrap();
    let state = AppState::new(FailoverRouter::new(breaker.clone()))
        .with_admin_token(Some(AdminToken::new(TOKEN).unwrap()))
        .with_metrics_agents(agents);
    (http::router(state), breaker)
}

fn assert_the_window(w: &WindowView) {
    assert_eq!((w.calls, w.failures, w.slow_calls), (10, 6, 0));
    assert!((w.failure_rate - 0.6).abs() < 1e-12, "{w:?}");
    assert_eq!(w.window_ms, 10_000);
    assert_eq!(w.buckets.len(), 10, "every bucket, zeros included");
    assert_eq!(w.buckets[0].start_ms, 16_000, "oldest first");
    assert_eq!(w.buckets[9].start_ms, 25_000, "the current one last");
    assert_eq!((w.buckets[1].calls, w.buckets[1].failures), (6, 5));
    assert_eq!((w.buckets[9].calls, w.buckets[9].failures), (4, 1));
    assert_eq!(w.buckets.iter().map(|b| b.calls).sum::<u64>(), 10);
}

#[tokio::test]
async fn metrics_show_the_window_of_an_agent_with_a_rate_policy_and_none_for_a_plain_one() {
    let (_, breaker) = windowed_app();
    let m = breaker.metrics(&agent("agent-r")).await.unwrap();
    assert_the_window(m.window.as_ref().expect("a rate policy keeps a window"));
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["window"]["buckets"][9]["failures"], 1);
    assert_eq!(json["settings"]["failure_rate_threshold"], 0.5);
    let back: AgentMetrics = serde_json::from_value(json).unwrap();
    assert_eq!(back, m, "reads back");

    // A plain agent: exactly the original fields, no window, no settings.
    let plain = breaker.metrics(&agent("agent-plain")).await.unwrap();
    assert_eq!(plain.window, None);
    let json = serde_json::to_value(&plain).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "agent_id",
            "backoff_seconds",
            "generation",
            "metrics",
            "retry_after_seconds",
            "state"
        ]
    );
}

#[tokio::test]
async fn a_setting_of_zero_turns_the_window_off_for_that_agent() {
    let config = BreakerConfig::builder()
        .failure_rate_threshold(Some(0.5))
        .build()
        .unwrap();
    let breaker = CircuitBreaker::builder()
        .store(MemoryStore::new())
        .config(config)
        .build()
        .unwrap();
    let off = AgentSettings {
        failure_rate_threshold: Some(0.0),
        ..AgentSettings::default()
    };
    breaker.configure(&agent("agent-off"), off).await.unwrap();
    breaker
        .configure(&agent("agent-on"), AgentSettings::default())
        .await
        .unwrap();
    let m = breaker.metrics(&agent("agent-off")).await.unwrap();
    assert_eq!(m.window, None, "0 turns the policy off for this agent");
    let m = breaker.metrics(&agent("agent-on")).await.unwrap();
    assert!(m.window.is_some(), "the process's rate policy");
}

// The two below read health, which the router builds
// (`src/router/health.rs`): they pass once it makes each agent's metrics
// with `AgentMetrics::from_snapshot_in` (the process's config), as
// `CircuitBreaker::metrics` does.

#[tokio::test]
async fn health_shows_each_agents_window_for_the_dashboard() {
    let (app, _) = windowed_app();
    let (status, health) = send(&app, get("/api/circuit-breaker/health")).await;
    assert_eq!(status, StatusCode::OK);
    let window: WindowView =
        serde_json::from_value(health["agents"]["agent-r"]["window"].clone()).unwrap();
    assert_the_window(&window);
    assert!(health["agents"]["agent-plain"].get("window").is_none());
}

#[tokio::test]
async fn prometheus_has_window_gauges_for_agents_with_a_window_only() {
    // Closed agents have series only when every agent is reported (the
    // default reports those not closed).
    let (app, _) = windowed_app_reporting(MetricsAgents::All);
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let (status, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap();
    assert!(
        text.contains(r#"fleet_breaker_window_calls{agent="agent-r"} 10"#),
        "{text}"
    );
    assert!(
        text.contains(r#"fleet_breaker_window_failure_rate{agent="agent-r"} 0.6"#),
        "{text}"
    );
    assert!(
        text.contains(r#"fleet_breaker_window_slow_call_rate{agent="agent-r"} 0.0"#),
        "{text}"
    );
    assert!(
        !text.contains(r#"fleet_breaker_window_calls{agent="agent-plain"}"#),
        "{text}"
    );
}
