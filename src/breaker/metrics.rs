//! [`AgentMetrics`]: one agent's state and counters, in the original JSON shape.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::agent_id::AgentId;
use crate::clock::iso8601;
use crate::model::{CircuitState, Snapshot, backoff_seconds};
use crate::store::Corruption;

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
///
/// An agent whose stored state cannot be read (a field edited by hand, say)
/// is reported with `"state": "corrupt"` and a `"corrupt"` object naming the
/// field ([`Corruption`]); its counters are zero and its backoff 0:
///
/// ```json
/// {"agent_id": "agent-2", "state": "corrupt",
///  "corrupt": {"key": "fleet-breaker:{agent-2}:state", "field": "failure_count",
///              "value": "-5", "expected": "an integer from 0 to 2^53 - 1"},
///  "metrics": {"failure_count": 0, "...": "..."}, "backoff_seconds": 0.0, "...": "..."}
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AgentMetrics {
    /// The agent.
    pub agent_id: AgentId,
    /// Its circuit's state. For a corrupt agent (see
    /// [`corrupt`](Self::corrupt)), whose state nobody can read, `Open`
    /// here and `"corrupt"` in JSON.
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
    /// Set when the agent's stored state is corrupt: which field, and what
    /// it holds. An admin reset or force repairs it.
    pub corrupt: Option<Corruption>,
}

/// The JSON state of a corrupt agent.
const CORRUPT: &str = "corrupt";

/// [`AgentMetrics`] as JSON: `state` is a circuit state or `"corrupt"`, and
/// `corrupt` appears only when set.
#[derive(Serialize)]
struct WireOut<'a> {
    agent_id: &'a AgentId,
    state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    corrupt: Option<&'a Corruption>,
    metrics: &'a Counters,
    backoff_seconds: f64,
    generation: u64,
    retry_after_seconds: Option<f64>,
}

#[derive(Deserialize)]
struct WireIn {
    agent_id: AgentId,
    state: String,
    #[serde(default)]
    corrupt: Option<Corruption>,
    metrics: Counters,
    backoff_seconds: f64,
    generation: u64,
    retry_after_seconds: Option<f64>,
}

impl Serialize for AgentMetrics {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireOut {
            agent_id: &self.agent_id,
            state: if self.corrupt.is_some() {
                CORRUPT
            } else {
                self.state.as_str()
            },
            corrupt: self.corrupt.as_ref(),
            metrics: &self.metrics,
            backoff_seconds: self.backoff_seconds,
            generation: self.generation,
            retry_after_seconds: self.retry_after_seconds,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for AgentMetrics {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = WireIn::deserialize(d)?;
        let state = if wire.state == CORRUPT {
            CircuitState::Open
        } else {
            wire.state.parse().map_err(serde::de::Error::custom)?
        };
        Ok(Self {
            agent_id: wire.agent_id,
            state,
            metrics: wire.metrics,
            backoff_seconds: wire.backoff_seconds,
            generation: wire.generation,
            retry_after_seconds: wire.retry_after_seconds,
            corrupt: wire.corrupt.filter(|_| wire.state == CORRUPT),
        })
    }
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
            corrupt: None,
        }
    }

    /// The report of an agent whose stored state is corrupt: `corruption`,
    /// zero counters (see the type's docs).
    #[must_use]
    pub fn from_corruption(agent: &AgentId, corruption: Corruption) -> Self {
        Self {
            agent_id: agent.clone(),
            state: CircuitState::Open,
            metrics: Counters {
                failure_count: 0,
                success_count: 0,
                total_rejections: 0,
                last_failure_time: None,
                last_success_time: None,
            },
            backoff_seconds: 0.0,
            generation: 0,
            retry_after_seconds: None,
            corrupt: Some(corruption),
        }
    }

    /// Whether the agent's stored state is corrupt (see
    /// [`corrupt`](Self::corrupt)).
    #[must_use]
    pub fn is_corrupt(&self) -> bool {
        self.corrupt.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BreakerConfig;

    #[test]
    fn a_corrupt_agent_is_state_corrupt_in_json_and_reads_back() {
        let agent = AgentId::new("agent-2").expect("valid id");
        let corruption = Corruption {
            key: "fleet-breaker:{agent-2}:state".to_owned(),
            field: "failure_count".to_owned(),
            value: Some("-5".to_owned()),
            expected: "an integer from 0 to 2^53 - 1".to_owned(),
        };
        let corrupt = AgentMetrics::from_corruption(&agent, corruption);
        let json = serde_json::to_value(&corrupt).expect("serialisable");
        assert_eq!(json["state"], "corrupt");
        assert_eq!(json["corrupt"]["field"], "failure_count");
        assert_eq!(json["corrupt"]["value"], "-5");
        assert_eq!(json["metrics"]["failure_count"], 0);
        let back: AgentMetrics = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, corrupt);

        let fresh = Snapshot::fresh(&BreakerConfig::default());
        let healthy = AgentMetrics::from_snapshot(&agent, &fresh, 0);
        let json = serde_json::to_value(&healthy).expect("serialisable");
        assert_eq!(json["state"], "closed");
        assert!(json.get("corrupt").is_none(), "{json}");
        let back: AgentMetrics = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, healthy);
        let unknown = serde_json::json!({"agent_id": "a", "state": "ajar", "metrics":
            {"failure_count": 0, "success_count": 0, "total_rejections": 0,
             "last_failure_time": null, "last_success_time": null},
            "backoff_seconds": 1.0, "generation": 0, "retry_after_seconds": null});
        assert!(serde_json::from_value::<AgentMetrics>(unknown).is_err());
    }
}
