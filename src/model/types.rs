//! The data the state machine works on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::window::Window;
use crate::agent_id::AgentId;
use crate::config::{AgentSettings, BreakerConfig};

/// The state of one agent's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls are admitted; failures are counted.
    Closed,
    /// Calls are rejected until the backoff has elapsed.
    Open,
    /// A few probe calls are admitted, fleet-wide, to test recovery.
    HalfOpen,
    /// Operator override: every call is rejected.
    ForcedOpen,
    /// Operator override: every call is admitted and the circuit never opens.
    ForcedClosed,
}

impl CircuitState {
    /// Every state, in the order above.
    pub const ALL: [Self; 5] = [
        Self::Closed,
        Self::Open,
        Self::HalfOpen,
        Self::ForcedOpen,
        Self::ForcedClosed,
    ];

    /// The name used in Redis, JSON and messages: `closed`, `half_open`, ...
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::ForcedClosed => "forced_closed",
        }
    }

    /// Whether calls are admitted without restriction (closed or forced closed).
    #[must_use]
    pub fn admits_all(self) -> bool {
        matches!(self, Self::Closed | Self::ForcedClosed)
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`CircuitState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown circuit state {0:?}; expected closed, open, half_open, forced_open or forced_closed"
)]
pub struct UnknownState(pub String);

impl FromStr for CircuitState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "closed" => Self::Closed,
            "open" => Self::Open,
            "half_open" => Self::HalfOpen,
            "forced_open" => Self::ForcedOpen,
            "forced_closed" => Self::ForcedClosed,
            other => return Err(UnknownState(other.to_owned())),
        })
    }
}

/// What an operator forces a circuit to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForceMode {
    /// Reject every call (`forced_open`).
    Open,
    /// Admit every call and never open (`forced_closed`).
    Closed,
    /// End any force: closed, failure count zero, base backoff.
    Auto,
}

impl ForceMode {
    /// `open`, `closed` or `auto`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Auto => "auto",
        }
    }
}

impl FromStr for ForceMode {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            "auto" => Ok(Self::Auto),
            other => Err(UnknownState(format!(
                "{other} (force takes open, closed or auto)"
            ))),
        }
    }
}

/// How a call ended, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The agent did its job.
    Success,
    /// The agent failed.
    Failure,
    /// Says nothing about the agent (cancelled, or an error the classifier
    /// ignores): releases a probe permit and counts nothing.
    Neutral,
}

impl Outcome {
    /// `success`, `failure` or `neutral`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Neutral => "neutral",
        }
    }
}

/// A half-open probe permit on loan: its id and the time it is presumed lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The permit's id.
    pub permit_id: String,
    /// Milliseconds since the epoch at which the lease lapses.
    pub deadline_ms: u64,
}

/// The whole state of one agent's circuit (the Redis hash plus its leases).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Current state.
    pub state: CircuitState,
    /// Consecutive failures in the closed (or forced-closed) state; a
    /// success there zeroes it. Probe outcomes leave it alone, so an open or
    /// half-open circuit shows the count that opened it (`failure_threshold`),
    /// however often it reopened; closing zeroes it.
    pub failure_count: u64,
    /// Successes since the last failure (probe successes included); a
    /// streak, not a total.
    pub success_count: u64,
    /// Calls rejected, in any state, since the last reset.
    pub total_rejections: u64,
    /// Time of the last failure, ms since the epoch.
    pub last_failure_ms: Option<u64>,
    /// Time of the last success, ms since the epoch.
    pub last_success_ms: Option<u64>,
    /// Current backoff in ms: base when closed, escalated by each opening.
    pub backoff_ms: u64,
    /// While open: when the circuit may go half-open (kept through the
    /// half-open period that follows, as the end of the last backoff); while
    /// forced open with an expiry: when the force ends. 0 after a close, a
    /// reset or a force closed.
    pub open_until_ms: u64,
    /// Probe successes so far in this half-open period.
    pub half_open_successes: u32,
    /// Incremented by every transition; never goes back.
    pub generation: u64,
    /// When a force ends, if it has an expiry.
    pub forced_until_ms: Option<u64>,
    /// Outstanding probe leases, ordered by deadline then permit id.
    pub probes: Vec<Lease>,
    /// Which history of the agent this is: set by the store when it creates
    /// the agent (on Redis, the hash field `epoch`: microseconds of Redis
    /// `TIME`), so an agent deleted and created again (generations start
    /// again from 0) is told apart from the old one. Generations compare
    /// only within one epoch. 0: unknown (the embedded store, the model, a
    /// hash written before epochs). The model only carries it.
    #[serde(default)]
    pub epoch: u64,
    /// The fleet's calls in the sliding window, kept while a rate policy or
    /// a quorum is on for the agent (empty otherwise).
    #[serde(default)]
    pub window: Window,
    /// The settings stored for this agent, overriding the process's config
    /// field by field (see [`AgentSettings`]).
    #[serde(default)]
    pub settings: AgentSettings,
}

impl Snapshot {
    /// The state of an agent never seen before: closed, zero, base backoff.
    #[must_use]
    pub fn fresh(config: &BreakerConfig) -> Self {
        Self {
            state: CircuitState::Closed,
            failure_count: 0,
            success_count: 0,
            total_rejections: 0,
            last_failure_ms: None,
            last_success_ms: None,
            backoff_ms: config.base_backoff_ms(),
            open_until_ms: 0,
            half_open_successes: 0,
            generation: 0,
            forced_until_ms: None,
            probes: Vec::new(),
            epoch: 0,
            window: Window::default(),
            settings: AgentSettings::default(),
        }
    }

    /// The config this agent runs under: `config` with the agent's stored
    /// [`settings`](Self::settings) applied.
    #[must_use]
    pub fn effective(&self, config: &BreakerConfig) -> BreakerConfig {
        if self.settings.is_empty() {
            *config
        } else {
            self.settings.apply(config)
        }
    }
}

/// What a pod reports about one call it made under a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report<'a> {
    /// How the call ended.
    pub outcome: Outcome,
    /// Whether it took at least `slow_call_duration`.
    pub slow: bool,
    /// The agent asked not to be called again for this long (a 429 or a
    /// 503 with Retry-After): with a failure, the circuit opens fleet-wide
    /// at once for at least that long (at most `max_backoff`).
    pub retry_after_ms: Option<u64>,
    /// The reporting pod ([`reporter_id`](super::reporter_id)), for the quorum.
    pub pod: &'a str,
}

impl Report<'static> {
    /// `outcome`, neither slow nor with a retry-after, from pod `-`.
    #[must_use]
    pub fn of(outcome: Outcome) -> Self {
        Self {
            outcome,
            slow: false,
            retry_after_ms: None,
            pod: "-",
        }
    }
}

/// A granted permit, as the store decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The generation the permit was granted in.
    pub generation: u64,
    /// Whether it is a half-open probe holding a lease.
    pub probe: bool,
}

/// The answer to an acquire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// The call may go ahead.
    Granted(Grant),
    /// The call must not be made.
    Rejected {
        /// The state that refused it.
        state: CircuitState,
        /// When asking again may succeed, in ms, where that is known.
        retry_after_ms: Option<u64>,
    },
}

/// What an outcome needs to know about the permit it settles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The permit's id (the lease name, for a probe).
    pub permit_id: String,
    /// The generation it was granted in.
    pub generation: u64,
}

/// Why a circuit changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransitionReason {
    /// `failure_threshold` consecutive failures opened a closed circuit.
    FailureThreshold,
    /// The backoff elapsed: the circuit went half-open.
    BackoffElapsed,
    /// A half-open probe failed: the circuit opened again.
    ProbeFailed,
    /// `half_open_max_calls` probes succeeded: the circuit closed.
    ProbesSucceeded,
    /// An operator reset the circuit.
    Reset,
    /// An operator forced the circuit open or closed.
    Forced,
    /// An operator ended a force (`auto`).
    ForceCleared,
    /// A force reached its expiry.
    ForceExpired,
    /// The failed share of the fleet's calls in the window reached
    /// `failure_rate_threshold`.
    FailureRate,
    /// The slow share of the fleet's calls in the window reached
    /// `slow_call_rate_threshold`.
    SlowCallRate,
    /// A failure carried a retry-after: the circuit opened at once.
    RetryAfter,
}

impl TransitionReason {
    /// The snake_case name used in messages.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailureThreshold => "failure_threshold",
            Self::BackoffElapsed => "backoff_elapsed",
            Self::ProbeFailed => "probe_failed",
            Self::ProbesSucceeded => "probes_succeeded",
            Self::Reset => "reset",
            Self::Forced => "forced",
            Self::ForceCleared => "force_cleared",
            Self::ForceExpired => "force_expired",
            Self::FailureRate => "failure_rate",
            Self::SlowCallRate => "slow_call_rate",
            Self::RetryAfter => "retry_after",
        }
    }
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One state change of one agent: the message published on `PREFIX:events`
/// and appended to `PREFIX:transitions` (DESIGN.md section 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// The agent whose circuit changed.
    pub agent_id: AgentId,
    /// The state before.
    pub from: CircuitState,
    /// The state after.
    pub to: CircuitState,
    /// The generation after the change.
    pub generation: u64,
    /// When it happened, ms since the epoch (store time).
    pub at_ms: u64,
    /// Why it happened.
    pub reason: TransitionReason,
    /// The backoff after the change, in seconds.
    pub backoff_seconds: f64,
    /// See [`Snapshot::open_until_ms`].
    pub open_until_ms: u64,
    /// The agent's [`Snapshot::epoch`]: `generation` counts within it. 0 in
    /// a message without the field (a publisher from before epochs).
    #[serde(default)]
    pub epoch: u64,
}
