//! The HTTP API (`fleet_breaker::http::router`), driven with `oneshot`:
//! every route, every error status, and hostile input.

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use fleet_breaker::http::{self, AdminToken, AppState, MAX_BODY_BYTES};
use fleet_breaker::router::FailoverRouter;
use fleet_breaker::{AgentId, CircuitBreaker, RedisStore};
use futures::StreamExt;
use serde_json::{Value, json};
use support::TestRedis;
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token-0123456789";

fn agent(name: &str) -> AgentId {
    AgentId::new(name).unwrap()
}

/// A service on the embedded store with the admin token set; `agent-1`
/// and `agent-2` have been called once (so they are known).
async fn embedded_app() -> (Router, CircuitBreaker) {
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

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
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

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn admin_post(uri: &str, token: Option<&str>, body: Option<Value>) -> Request<Body> {
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

fn error_of(body: &Value) -> &str {
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
async fn reset_needs_post_and_the_token() {
    let (app, breaker) = embedded_app().await;
    let uri = "/api/circuit-breaker/reset/agent-1";

    let (status, body) = send(&app, get(uri)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(error_of(&body).contains("POST"), "{body}");

    let (status, body) = send(&app, admin_post(uri, None, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_of(&body).contains("Bearer"), "{body}");

    let (status, body) = send(&app, admin_post(uri, Some("wrong-token-0123456789"), None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.to_string().contains(TOKEN));

    let basic = Request::post(uri)
        .header(header::AUTHORIZATION, format!("Basic {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, basic).await.0, StatusCode::UNAUTHORIZED);

    breaker
        .force(&agent("agent-1"), fleet_breaker::ForceMode::Open, None)
        .await
        .unwrap();
    let (status, body) = send(&app, admin_post(uri, Some(TOKEN), None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "reset");
    assert_eq!(body["agent_id"], "agent-1");
    assert_eq!(body["transition"]["from"], "forced_open");
    assert_eq!(body["transition"]["to"], "closed");
    let metrics = breaker.metrics(&agent("agent-1")).await.unwrap();
    assert_eq!(metrics.state, fleet_breaker::CircuitState::Closed);
}

#[tokio::test]
async fn admin_routes_are_refused_without_a_configured_token() {
    let app = http::router(AppState::new(FailoverRouter::new(
        CircuitBreaker::in_memory(),
    )));
    for uri in [
        "/api/circuit-breaker/reset/agent-1",
        "/api/circuit-breaker/force/agent-1",
    ] {
        let body = Some(json!({"state": "open"}));
        let (status, body) = send(&app, admin_post(uri, Some(TOKEN), body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        assert!(error_of(&body).contains("no admin token"), "{body}");
    }
}

#[tokio::test]
async fn force_open_closed_auto_with_and_without_ttl() {
    let (app, breaker) = embedded_app().await;
    let uri = "/api/circuit-breaker/force/agent-2";
    let (status, body) = send(
        &app,
        admin_post(uri, Some(TOKEN), Some(json!({"state": "open"}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["transition"]["to"], "forced_open");
    let (_, health) = send(&app, get("/api/circuit-breaker/health")).await;
    assert_eq!(health["open_circuits"], 1);

    let body = json!({"state": "closed", "ttl_seconds": 600});
    let (status, body) = send(&app, admin_post(uri, Some(TOKEN), Some(body))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["transition"]["to"], "forced_closed");

    let (status, body) = send(
        &app,
        admin_post(uri, Some(TOKEN), Some(json!({"state": "auto"}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["transition"]["to"], "closed");
    let metrics = breaker.metrics(&agent("agent-2")).await.unwrap();
    assert_eq!(metrics.state, fleet_breaker::CircuitState::Closed);
}

#[tokio::test]
async fn force_refuses_malformed_bodies_with_a_message() {
    let (app, breaker) = embedded_app().await;
    let uri = "/api/circuit-breaker/force/agent-1";
    let cases: Vec<(&str, Option<&str>)> = vec![
        ("{\"state\": \"open\"", Some("application/json")),
        ("{\"state\": \"sideways\"}", Some("application/json")),
        (
            "{\"state\": \"open\", \"ttl_seconds\": -1}",
            Some("application/json"),
        ),
        (
            "{\"state\": \"open\", \"ttl_seconds\": 1e300}",
            Some("application/json"),
        ),
        (
            "{\"state\": \"open\", \"extra\": 1}",
            Some("application/json"),
        ),
        ("[]", Some("application/json")),
        ("state=open", Some("application/x-www-form-urlencoded")),
        ("{\"state\": \"open\"}", None),
        ("\u{0}\u{1}\u{2}", Some("application/json")),
    ];
    for (body, content_type) in cases {
        let mut request =
            Request::post(uri).header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let request = request.body(Body::from(body.to_owned())).unwrap();
        let (status, reply) = send(&app, request).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{body:?}: {status} {reply}"
        );
        assert!(!error_of(&reply).is_empty());
    }
    let metrics = breaker.metrics(&agent("agent-1")).await.unwrap();
    assert_eq!(
        metrics.state,
        fleet_breaker::CircuitState::Closed,
        "no bad body changed anything"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_changes_nothing() {
    let (app, breaker) = embedded_app().await;
    let huge = format!(
        "{{\"state\": \"open\", \"pad\": \"{}\"}}",
        "x".repeat(MAX_BODY_BYTES + 1)
    );
    let request = Request::post("/api/circuit-breaker/force/agent-1")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(huge))
        .unwrap();
    let (status, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(!error_of(&body).is_empty());
    let metrics = breaker.metrics(&agent("agent-1")).await.unwrap();
    assert_eq!(metrics.state, fleet_breaker::CircuitState::Closed);
}

#[tokio::test]
async fn hostile_agent_ids_are_400_naming_the_rule_and_unknown_ones_404() {
    let (app, breaker) = embedded_app().await;
    let long = "a".repeat(10 * 1024);
    let hostile = [
        "%7Bagent%7D",   // braces: a Redis hash tag
        "agent*",        // a wildcard
        "agent%3F",      // ?
        "a%20b",         // a space
        "a%00b",         // NUL
        "a%1Bb",         // ESC
        "a%0D%0Ab",      // CR LF
        "%FF%FE",        // not UTF-8
        "%C3%A9t%C3%A9", // UTF-8 outside the charset
        long.as_str(),   // 10 kB
    ];
    for raw in hostile {
        let uri = format!("/api/circuit-breaker/reset/{raw}");
        let (status, body) = send(&app, admin_post(&uri, Some(TOKEN), None)).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{}: {body}",
            &raw[..raw.len().min(40)]
        );
        let message = error_of(&body);
        assert!(
            message.len() < 300,
            "the error does not echo 10 kB: {} bytes",
            message.len()
        );
    }
    let (status, body) = send(
        &app,
        admin_post("/api/circuit-breaker/reset/agent-404", Some(TOKEN), None),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_of(&body).contains("unknown agent"), "{body}");
    let (status, _) = send(
        &app,
        admin_post(
            "/api/circuit-breaker/force/agent-404",
            Some(TOKEN),
            Some(json!({"state": "open"})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nothing else was touched.
    assert_eq!(breaker.agents().await.unwrap().len(), 2);
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
    assert!(page.contains("/assets/dashboard.js"), "the page loads its script");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no outside host"
    );
    for asset in [
        "/assets/dashboard.js",
        "/assets/api.js",
        "/assets/render.js",
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
    let (app, breaker) = embedded_app().await;
    let metrics = http::Metrics::new();
    metrics.watch(&breaker);
    let app_with_metrics = http::router(
        AppState::new(FailoverRouter::new(breaker.clone())).with_metrics(metrics.clone()),
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
    let (status, text) = send(&app, get("/metrics")).await;
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
