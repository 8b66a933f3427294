//! The admin routes: POST only, the bearer token, bodies, hostile agent ids.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use fleet_breaker::CircuitBreaker;
use fleet_breaker::http::{self, AppState, MAX_BODY_BYTES};
use fleet_breaker::router::FailoverRouter;
use serde_json::json;

use crate::{TOKEN, admin_post, agent, embedded_app, error_of, get, send};

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
