//! [`ApiError`] and the layer that makes every error answer JSON.

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::breaker::BreakerError;

/// An error answered as `{"error": "..."}` with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// A JSON body axum refused: 413 for one over the size limit, else
    /// `bad(what axum said)` (a 400 saying what was expected).
    pub(crate) fn of_body(
        rejection: &axum::extract::rejection::JsonRejection,
        bad: impl FnOnce(&str) -> Self,
    ) -> Self {
        use axum::extract::rejection::JsonRejection;
        match rejection {
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, b.body_text())
            }
            other => bad(&other.body_text()),
        }
    }

    /// An error with `status` and `message` (sent to the client as is).
    #[must_use]
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    #[must_use]
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// The status sent.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message sent.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<BreakerError> for ApiError {
    /// Bad input is a 400 naming the rule, an unknown agent a 404, an
    /// unreachable store a 503; any other store error is logged and
    /// answered 500 without its details.
    fn from(error: BreakerError) -> Self {
        match &error {
            e if e.is_invalid_input() => Self::bad_request(e.to_string()),
            BreakerError::UnknownAgent(agent) => Self::new(
                StatusCode::NOT_FOUND,
                format!("unknown agent {:?}: no pod has called it", agent.as_str()),
            ),
            e if e.is_store_unavailable() => {
                tracing::warn!(error = %e, "store unavailable while answering a request");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the breaker's store is unavailable; try again",
                )
            }
            e => {
                tracing::error!(error = %e, "store error while answering a request");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// The most of a non-JSON error body turned into a message.
const MAX_ERROR_BODY: usize = 4 * 1024;

/// Turns every error answer that is not JSON yet (axum's own rejections: a
/// bad path segment, a malformed body, a body too large, a wrong method)
/// into `{"error": "..."}`, keeping its status and headers (`Allow` on a 405).
pub(super) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = to_bytes(body, MAX_ERROR_BODY).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        let allowed = parts
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("another method");
        format!("method not allowed: use {allowed}")
    } else if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    let body = json!({ "error": message }).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}
