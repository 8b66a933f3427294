//! [`AgentMetrics`]: one agent's state and counters, in the original JSON shape.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::agent_id::AgentId;
use crate::clock::iso8601;
use crate::config::{AgentSettings, BreakerConfig, WINDOW_BUCKETS};
use crate::model::{CircuitState, Snapshot, backoff_seconds, bucket_index};
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
/// `generation` and `retry_after_seconds` are additions, and so are two
/// fields that appear only when they say something: `window`, the fleet's
/// calls in the sliding window of an agent whose effective config has a
/// rate policy or a quorum ([`WindowView`]), and `settings`, the agent's
/// stored [`AgentSettings`] when any is set:
///
/// ```json
/// {"agent_id": "agent-3", "state": "closed", "...": "...",
///  "window": {"calls": 40, "failures": 12, "slow_calls": 0, "failure_rate": 0.3,
///             "slow_call_rate": 0.0, "reporting_pods": 1, "window_ms": 10000,
///             "buckets": [{"start_ms": 1764500000000, "calls": 4, "failures": 1, "slow": 0},
///                         "... ten buckets, oldest first"]},
///  "settings": {"failure_rate_threshold": 0.5}}
/// ```
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
    /// The fleet's calls in the agent's window, when its effective config
    /// is [`windowed`](BreakerConfig::windowed); `None` otherwise (and in
    /// JSON, absent).
    pub window: Option<WindowView>,
    /// The settings stored for the agent (empty: the process's config; in
    /// JSON, absent).
    pub settings: AgentSettings,
    /// Seconds left of an open on this pod only: a trip condition held but
    /// fewer than `min_reporting_pods` pods reported trouble, so the fleet's
    /// circuit (`state`) stays as it is (see
    /// [`CircuitBreaker::local_opens`](super::CircuitBreaker::local_opens)).
    /// In JSON `local_open_seconds`, absent when none.
    pub local_open_seconds: Option<f64>,
}

/// The window of [`AgentMetrics`]: the fleet's calls to the agent in the
/// last `window_ms`, as the store counts them (DESIGN.md section 2, "Trip
/// policies").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowView {
    /// Calls (successes and failures) in the window.
    pub calls: u64,
    /// Of which failures.
    pub failures: u64,
    /// Of which slow.
    pub slow_calls: u64,
    /// `failures / calls`, 0 with no calls.
    pub failure_rate: f64,
    /// `slow_calls / calls`, 0 with no calls.
    pub slow_call_rate: f64,
    /// Distinct pods that reported a failure or a slow call in the window,
    /// counted up to the quorum (`min_reporting_pods`; the store keeps no
    /// more), 0 with a quorum of 1.
    pub reporting_pods: u64,
    /// The window's length, ms (the agent's effective `window`).
    pub window_ms: u64,
    /// The window's buckets, oldest first, the current one last: always
    /// [`WINDOW_BUCKETS`] of them, zeros where nothing was counted.
    pub buckets: Vec<BucketView>,
}

/// One bucket of a [`WindowView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketView {
    /// When the bucket starts, ms since the epoch (store time); it lasts
    /// `window_ms / 10`.
    pub start_ms: u64,
    /// Calls counted in it.
    pub calls: u64,
    /// Of which failures.
    pub failures: u64,
    /// Of which slow.
    pub slow: u64,
}

impl WindowView {
    /// The window of `snapshot` at store time `now_ms`, under `config` (the
    /// agent's effective config); `None` when that config keeps no window.
    #[must_use]
    pub fn of(snapshot: &Snapshot, config: &BreakerConfig, now_ms: u64) -> Option<Self> {
        if !config.windowed() {
            return None;
        }
        let counts = snapshot.window.counts(config, now_ms);
        let bucket_ms = config.bucket_ms();
        let current = bucket_index(config, now_ms);
        let oldest = current.saturating_sub(WINDOW_BUCKETS - 1);
        let buckets = (oldest..=current)
            .map(|index| {
                let counted = snapshot.window.buckets.iter().find(|b| b.index == index);
                BucketView {
                    start_ms: index * bucket_ms,
                    calls: counted.map_or(0, |b| b.calls),
                    failures: counted.map_or(0, |b| b.failures),
                    slow: counted.map_or(0, |b| b.slow),
                }
            })
            .collect();
        Some(Self {
            calls: counts.calls,
            failures: counts.failures,
            slow_calls: counts.slow,
            failure_rate: counts.failure_rate(),
            slow_call_rate: counts.slow_call_rate(),
            reporting_pods: counts.reporting_pods,
            window_ms: bucket_ms * WINDOW_BUCKETS,
            buckets,
        })
    }
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
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<&'a WindowView>,
    #[serde(skip_serializing_if = "AgentSettings::is_empty")]
    settings: &'a AgentSettings,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_open_seconds: Option<f64>,
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
    #[serde(default)]
    window: Option<WindowView>,
    #[serde(default)]
    settings: AgentSettings,
    #[serde(default)]
    local_open_seconds: Option<f64>,
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
            window: self.window.as_ref(),
            settings: &self.settings,
            local_open_seconds: self.local_open_seconds,
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
            window: wire.window,
            settings: wire.settings,
            local_open_seconds: wire.local_open_seconds,
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
    /// The metrics of `snapshot`, read at store time `now_ms`, under the
    /// process's `config` (with the agent's stored settings applied, it
    /// says whether the agent has a window and how long it is).
    #[must_use]
    pub fn from_snapshot_in(
        agent: &AgentId,
        snapshot: &Snapshot,
        now_ms: u64,
        config: &BreakerConfig,
    ) -> Self {
        Self {
            window: WindowView::of(snapshot, &snapshot.effective(config), now_ms),
            ..Self::from_snapshot(agent, snapshot, now_ms)
        }
    }

    /// The metrics of `snapshot`, read at store time `now_ms`, without the
    /// window (which needs the process's config: see
    /// [`from_snapshot_in`](Self::from_snapshot_in)); the stored settings
    /// are shown.
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
            window: None,
            settings: snapshot.settings,
            local_open_seconds: None,
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
            window: None,
            settings: AgentSettings::default(),
            local_open_seconds: None,
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
