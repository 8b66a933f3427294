//! `/api/circuit-breaker/config/{agent_id}`: the settings stored for one
//! agent, which override the process's config for it on every pod.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::api::{agent_from_path, authorize};
use super::{ApiError, AppState};
use crate::config::{AgentSettings, SETTING_NAMES};

/// `GET /api/circuit-breaker/config/{agent_id}`: the stored settings and the
/// config the agent runs under (the process's, with them applied). 404 for
/// an agent no pod has called or configured.
pub(super) async fn show(
    State(state): State<AppState>,
    agent: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let agent = agent_from_path(agent)?;
    let breaker = state.router().breaker();
    let snapshot = breaker.snapshot(&agent).await?;
    Ok(Json(json!({
        "agent_id": agent,
        "settings": snapshot.settings,
        "effective": snapshot.effective(breaker.config()),
    })))
}

/// `PUT /api/circuit-breaker/config/{agent_id}` (admin): replaces the
/// agent's settings with the body's, an [`AgentSettings`] object (`{}`
/// clears them). Answers as [`show`] does.
pub(super) async fn replace(
    State(state): State<AppState>,
    headers: HeaderMap,
    agent: Result<Path<String>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let agent = agent_from_path(agent)?;
    let Json(body) = body.map_err(|e| ApiError::of_body(&e, bad_settings))?;
    let settings = settings_of(body)?;
    let breaker = state.router().breaker();
    let snapshot = breaker.configure(&agent, settings).await?;
    state.changed();
    tracing::info!(agent = %agent, settings = ?settings.fields(), "agent settings replaced over HTTP");
    Ok(Json(json!({
        "status": if settings.is_empty() { "cleared" } else { "configured" },
        "agent_id": agent,
        "settings": snapshot.settings,
        "effective": snapshot.effective(breaker.config()),
    })))
}

/// The settings of a body: an object whose every field is a setting with a
/// number of its kind. Each field is read alone, so that a wrong one is
/// named (serde alone would say "invalid type: floating point `2.5`,
/// expected u32", not where), and an array is refused (serde would read
/// it into the fields in order).
fn settings_of(body: Value) -> Result<AgentSettings, ApiError> {
    let Value::Object(fields) = body else {
        return Err(bad_settings("the body is not a JSON object"));
    };
    let mut settings = AgentSettings::default();
    for (name, value) in fields {
        let one: AgentSettings = serde_json::from_value(json!({ name.as_str(): value }))
            .map_err(|error| bad_settings(&format!("`{name}`: {error}")))?;
        settings.merge(&one);
    }
    Ok(settings)
}

fn bad_settings(what: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{what}; expected an object of settings, each a number: {}; {{}} clears them",
        SETTING_NAMES.join(", ")
    ))
}
