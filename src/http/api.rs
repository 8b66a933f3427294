//! The JSON routes: health, failures, the admin reset and force, and the
//! process and readiness probes.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::listing::{self, Listing};
use super::{ApiError, AppState, DEFAULT_FAILURES_LIMIT, MAX_FAILURES_LIMIT};
use crate::agent_id::AgentId;
use crate::model::ForceMode;
use crate::router::HealthSummary;
use crate::store::FailureRecord;

/// The longest force ttl accepted: 30 days.
const MAX_FORCE_TTL_SECONDS: f64 = 30.0 * 24.0 * 3600.0;

/// `GET /api/circuit-breaker/health[?state=..&limit=..&after=..|?agents=none]`:
/// see [`listing`](super::listing).
pub(super) async fn health(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let listing = Listing::parse(&params)?;
    match &listing {
        Listing::Summary => return Ok(summary_json(&state, state.summary().await?).into_response()),
        Listing::Page {
            states,
            after,
            limit,
        } => {
            if let Some(page) = state.census_page(states, after.as_ref(), *limit).await? {
                return Ok(Json(listing::census_page(&page)).into_response());
            }
        }
        Listing::Everything => {}
    }
    let health = state.health().await?;
    Ok(match listing {
        Listing::Everything => (
            [(header::CONTENT_TYPE, "application/json")],
            health.json.clone(),
        )
            .into_response(),
        Listing::Summary => summary_json(&state, health.status.summary()).into_response(),
        Listing::Page {
            states,
            after,
            limit,
        } => Json(listing::page(
            &health.status,
            &states,
            after.as_ref(),
            limit,
        ))
        .into_response(),
    })
}

/// `GET /api/circuit-breaker/health/summary`: the counts alone.
pub(super) async fn health_summary(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(summary_json(&state, state.summary().await?))
}

/// The counts, and `config_mismatch` when another pod of the fleet runs
/// with a different process-wide config (see
/// [`CircuitBreaker::config_agreement`](crate::CircuitBreaker::config_agreement)).
fn summary_json(state: &AppState, summary: HealthSummary) -> Json<Value> {
    let mut json = serde_json::to_value(summary).unwrap_or_else(|_| json!({}));
    let agreement = state.router().breaker().config_agreement();
    if agreement.is_mismatch()
        && let Some(fields) = json.as_object_mut()
    {
        fields.insert("config_mismatch".into(), json!(agreement));
    }
    Json(json)
}

/// The query of `GET /api/circuit-breaker/failures`, read as text so that a
/// bad `limit` gets a message of ours.
#[derive(Debug, Deserialize)]
pub(super) struct FailuresQuery {
    limit: Option<String>,
}

/// `GET /api/circuit-breaker/failures?limit=N`.
pub(super) async fn failures(
    State(state): State<AppState>,
    query: Result<Query<FailuresQuery>, QueryRejection>,
) -> Result<Json<Vec<FailureRecord>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = parse_limit(query.limit.as_deref())?;
    Ok(Json(state.router().recent_failures(limit).await?))
}

fn parse_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_FAILURES_LIMIT);
    };
    raw.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_FAILURES_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "limit must be a whole number from 1 to {MAX_FAILURES_LIMIT}"
            ))
        })
}

/// `POST /api/circuit-breaker/reset/{agent_id}` (admin).
pub(super) async fn reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    agent: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let agent = agent_from_path(agent)?;
    let transition = state.router().breaker().reset(&agent).await?;
    state.changed();
    tracing::info!(agent = %agent, "admin reset over HTTP");
    Ok(Json(json!({
        "status": "reset",
        "agent_id": agent,
        "transition": transition,
    })))
}

/// The body of `POST /api/circuit-breaker/force/{agent_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ForceBody {
    state: ForceMode,
    #[serde(default)]
    ttl_seconds: Option<f64>,
}

/// `POST /api/circuit-breaker/force/{agent_id}` (admin).
pub(super) async fn force(
    State(state): State<AppState>,
    headers: HeaderMap,
    agent: Result<Path<String>, PathRejection>,
    body: Result<Json<ForceBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let agent = agent_from_path(agent)?;
    let Json(body) = body.map_err(|e| {
        ApiError::of_body(&e, |said| {
            ApiError::bad_request(format!(
                "{said}; expected {{\"state\": \"open\"|\"closed\"|\"auto\", \"ttl_seconds\": n}}"
            ))
        })
    })?;
    let ttl = body.ttl_seconds.map(ttl_from_seconds).transpose()?;
    let transition = state
        .router()
        .breaker()
        .force(&agent, body.state, ttl)
        .await?;
    state.changed();
    tracing::info!(agent = %agent, state = body.state.as_str(), ?ttl, "admin force over HTTP");
    Ok(Json(json!({
        "status": "forced",
        "agent_id": agent,
        "state": body.state,
        "ttl_seconds": body.ttl_seconds,
        "transition": transition,
    })))
}

fn ttl_from_seconds(seconds: f64) -> Result<Duration, ApiError> {
    if (0.001..=MAX_FORCE_TTL_SECONDS).contains(&seconds) {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(ApiError::bad_request(format!(
            "ttl_seconds must be from 0.001 to {MAX_FORCE_TTL_SECONDS} (30 days); omit it to force until changed"
        )))
    }
}

/// 403 when no admin token is configured, 401 when the request's is missing
/// or wrong.
pub(super) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match state.admin_token() {
        Some(token) => token.check(headers),
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin routes are disabled: no admin token is configured (FLEET_BREAKER_ADMIN_TOKEN)",
        )),
    }
}

pub(super) fn agent_from_path(
    agent: Result<Path<String>, PathRejection>,
) -> Result<AgentId, ApiError> {
    let Path(raw) = agent.map_err(|e| ApiError::bad_request(e.body_text()))?;
    AgentId::new(&raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `GET /healthz`: the process is up.
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the store answers a ping.
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.router().breaker().store();
    match store.ping().await {
        Ok(()) => Ok(Json(json!({ "status": "ready", "store": store.kind() }))),
        Err(error) => {
            tracing::warn!(%error, "readiness: the store does not answer");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the {} store does not answer", store.kind()),
            ))
        }
    }
}

/// Any other path.
pub(super) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_and_bounds() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_FAILURES_LIMIT);
        assert_eq!(parse_limit(Some("1")).unwrap(), 1);
        assert_eq!(parse_limit(Some("1000")).unwrap(), 1000);
        for bad in [
            "0",
            "1001",
            "-1",
            "abc",
            "",
            "1e3",
            "99999999999999999999999",
        ] {
            let err = parse_limit(Some(bad)).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{bad}");
            assert!(err.message().contains("1 to 1000"), "{bad}");
        }
    }

    #[test]
    fn ttl_bounds() {
        assert_eq!(ttl_from_seconds(600.0).unwrap(), Duration::from_secs(600));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
            assert!(ttl_from_seconds(bad).is_err(), "{bad}");
        }
    }
}
