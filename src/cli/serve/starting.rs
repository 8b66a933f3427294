//! What `serve` answers while its store has not answered yet: alive
//! (`/healthz` 200), not ready (`/readyz` 503), and 503 for the rest.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

/// The routes of a service waiting for its store.
pub(super) fn router() -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({ "status": "ok" })) }),
        )
        .fallback(not_yet)
}

/// 503: the store has not answered yet.
async fn not_yet() -> Response {
    let body = json!({
        "error": "the store does not answer yet; this service serves once it does"
    });
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}
