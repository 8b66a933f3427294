//! The HTTP API (`fleet_breaker::http::router`), driven with `oneshot`:
//! every route, every error status, and hostile input.
//!
//! - here: the helpers, health, failures, JSON errors;
//! - `admin.rs`: reset and force, tokens, bodies, hostile agent ids;
//! - `agreement.rs`: pods with different configs, named in health and /metrics;
//! - `config.rs`: per-agent settings, and the window health and /metrics show;
//! - `corrupt.rs`: a corrupt agent, or failure record, in Redis;
//! - `service.rs`: probes, dashboard, metrics, SSE, Redis, the health copy.
//! - `listing.rs`: the health listing filtered, paged, and its counts alone;
//! - `scale.rs`: the shared read in flight, gzip, `/metrics` bounded.

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod agreement;
mod config;
mod corrupt;
mod listing;
mod scale;
mod service;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use fleet_breaker::http::{self, AdminToken, AppState};
use fleet_breaker::router::FailoverRouter;
use fleet_breaker::{AgentId, CircuitBreaker};
use serde_json::Value;
use tower::ServiceExt;

pub(crate) const TOKEN: &str = "test-admin-token-0123456789";

pub(crate) fn agent(name: &str) -> AgentId {
    AgentId::new(name).unwrap()
}

/// A service on the embedded store with the admin token set; `agent-1`
/// and `agent-2` have been called once (so they are known).
pub(crate) async fn embedded_app() -> (Router, CircuitBreaker) {
    let breaker = CircuitBreaker::in_memory();
    for name in ["agent-1", "agent-2"] {
        breaker
            .call(&agent(name), async { Ok::<_, std::io::Error>(()) })
            .await
            .unwrap();
    }
    let state = AppState::new(FailoverRouter::new(breaker.clone()))
        .with_admin_token(Some(AdminToken::new(TOKEN).unwrap()));
    (http::router(state), breaker)
}

pub(crate) async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let body = if content_type.starts_with("application/json") {
        serde_json::from_slice(&bytes).unwrap()
    } else {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    };
    (status, body)
}

pub(crate) fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub(crate) fn admin_post(uri: &str, token: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut request = Request::post(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => request.body(Body::empty()).unwrap(),
    }
}

pub(crate) fn error_of(body: &Value) -> &str {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON error: {body}"))
}

#[tokio::test]
async fn health_has_the_original_shape() {
    let (app, _) = embedded_app().await;
    let (status, body) = send(&app, get("/api/circuit-breaker/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total_agents"], 2);
    assert_eq!(body["healthy_agents"], 2);
    assert_eq!(body["open_circuits"], 0);
    assert_eq!(body["store"], "ok");
    assert_eq!(body["agents"]["agent-1"]["state"], "closed");
    assert_eq!(body["agents"]["agent-1"]["metrics"]["failure_count"], 0);
}

#[tokio::test]
async fn failures_limit_defaults_and_bounds() {
    let (app, _) = embedded_app().await;
    let router = FailoverRouter::new(CircuitBreaker::in_memory());
    let _ = router
        .route_task(
            "t1",
            ["agent-9"],
            |_, ()| async { Err::<(), _>("boom") },
            (),
        )
        .await;
    let app2 = http::router(AppState::new(router));
    let (status, body) = send(&app2, get("/api/circuit-breaker/failures")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["agent_id"], "agent-9");
    assert_eq!(body[0]["reason"], "boom");
    for ok in ["1", "1000"] {
        let (status, _) = send(
            &app,
            get(&format!("/api/circuit-breaker/failures?limit={ok}")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "limit={ok}");
    }
    for bad in ["0", "1001", "-5", "ten", "%FF"] {
        let (status, body) = send(
            &app,
            get(&format!("/api/circuit-breaker/failures?limit={bad}")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "limit={bad}");
        assert!(error_of(&body).contains("limit"), "limit={bad}: {body}");
    }
}

#[tokio::test]
async fn every_error_is_json() {
    let (app, _) = embedded_app().await;
    let cases = [
        (Method::GET, "/no/such/route", StatusCode::NOT_FOUND),
        (
            Method::DELETE,
            "/api/circuit-breaker/health",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::PUT,
            "/api/circuit-breaker/force/agent-1",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Method::POST, "/metrics", StatusCode::METHOD_NOT_ALLOWED),
    ];
    for (method, uri, expected) in cases {
        let request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let (status, body) = send(&app, request).await;
        assert_eq!(status, expected, "{method} {uri}");
        assert!(!error_of(&body).is_empty(), "{method} {uri}: {body}");
    }
}
