//! [`AgentMetrics`]: one agent's state and counters, in the original JSON shape.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::agent_id::AgentId;
use crate::model::{CircuitState, Snapshot, backoff_seconds};

/// One agent's circuit, in the shape of the original specification:
///
/// ```json
/// {"agent_id": "agent-1", "state": "closed",
///  "metrics": {"failure_count": 0, "success_count": 42, "total_rejections": 5,
///              "last_failure_time": null, "last_success_time": "2025-11-29T11:27:00.120Z"},
///  "backoff_seconds": 1.0, "generation": 4, "retry_after_seconds": null}
/// ```
///
/// `generation` and `retry_after_seconds` are additions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentMetrics {
    /// The agent.
    pub agent_id: AgentId,
    /// Its circuit's state.
    pub state: CircuitState,
    /// Its counters.
    pub metrics: Counters,
    /// The current backoff, in seconds.
    pub backoff_seconds: f64,
    /// The circuit's generation (transitions so far).
    pub generation: u64,
    /// While open or forced open with an expiry: seconds until calls may be
    /// admitted again.
    pub retry_after_seconds: Option<f64>,
}

/// The counters of [`AgentMetrics`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Consecutive failures in the closed state (an open or half-open
    /// circuit shows the count that opened it; probes do not add to it).
    pub failure_count: u64,
    /// Successes since the last failure: a streak, not a total, so no
    /// success rate can be computed from these two counters.
    pub success_count: u64,
    /// Calls rejected since the last reset.
    pub total_rejections: u64,
    /// The last failure, ISO-8601 UTC, or null.
    pub last_failure_time: Option<String>,
    /// The last success, ISO-8601 UTC, or null.
    pub last_success_time: Option<String>,
}

impl AgentMetrics {
    /// The metrics of `snapshot`, read at store time `now_ms`.
    #[must_use]
    pub fn from_snapshot(agent: &AgentId, snapshot: &Snapshot, now_ms: u64) -> Self {
        let retry_after_ms = match snapshot.state {
            CircuitState::Open | CircuitState::ForcedOpen if snapshot.open_until_ms > 0 => {
                Some(snapshot.open_until_ms.saturating_sub(now_ms))
            }
            _ => None,
        };
        Self {
            agent_id: agent.clone(),
            state: snapshot.state,
            metrics: Counters {
                failure_count: snapshot.failure_count,
                success_count: snapshot.success_count,
                total_rejections: snapshot.total_rejections,
                last_failure_time: snapshot.last_failure_ms.map(iso8601),
                last_success_time: snapshot.last_success_ms.map(iso8601),
            },
            backoff_seconds: backoff_seconds(snapshot.backoff_ms),
            generation: snapshot.generation,
            retry_after_seconds: retry_after_ms.map(backoff_seconds),
        }
    }
}

/// Milliseconds since the epoch as RFC 3339 / ISO-8601 UTC.
#[must_use]
pub fn iso8601(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms after the epoch"))
}
