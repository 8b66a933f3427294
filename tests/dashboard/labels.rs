//! The page's words, read from what the service serves (no browser): the
//! counters are streaks, and the page says so.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use fleet_breaker::CircuitBreaker;
use fleet_breaker::http::{self, AppState};
use fleet_breaker::router::FailoverRouter;
use tower::ServiceExt;

async fn served(path: &str) -> String {
    let app = http::router(AppState::new(FailoverRouter::new(
        CircuitBreaker::in_memory(),
    )));
    let request = Request::get(path).body(Body::empty()).expect("a request");
    let response = app.oneshot(request).await.expect("an answer");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let body = to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    String::from_utf8(body.to_vec()).expect("utf-8")
}

#[tokio::test]
async fn the_counters_are_labelled_as_streaks_since_the_last_failure_not_a_rate() {
    let page = served("/").await;
    let render = served("/assets/render.js").await;

    assert!(page.contains("Successes since last failure"), "{page}");
    assert!(page.contains("Failures in a row"), "{page}");
    assert!(
        page.to_lowercase()
            .contains("consecutive failures in the closed state"),
        "the failures tooltip says what counts: {page}"
    );
    for text in [&page, &render] {
        assert!(!text.to_lowercase().contains("success rate"), "{text}");
        assert!(!text.contains("successRate"), "{text}");
    }
}
