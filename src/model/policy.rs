//! The trip policies: which condition opens a closed circuit, the quorum,
//! and the jitter of an open time (DESIGN.md section 2, "Trip policies").

use super::types::{CircuitState, Snapshot, TransitionReason};
use crate::agent_id::AgentId;
use crate::config::BreakerConfig;

/// The first trip condition that holds for a closed circuit, quorum aside:
/// `failure_threshold` consecutive failures, then the failure rate, then the
/// slow-call rate (each rate only with `minimum_calls` calls in the window).
#[must_use]
pub fn trip_condition(
    s: &Snapshot,
    config: &BreakerConfig,
    now_ms: u64,
) -> Option<TransitionReason> {
    if s.state != CircuitState::Closed {
        return None;
    }
    if s.failure_count >= u64::from(config.failure_threshold) {
        return Some(TransitionReason::FailureThreshold);
    }
    if !config.windowed() {
        return None;
    }
    let w = s.window.counts(config, now_ms);
    if w.calls < u64::from(config.minimum_calls) {
        return None;
    }
    if config
        .failure_rate_threshold
        .is_some_and(|t| w.failure_rate() >= t)
    {
        return Some(TransitionReason::FailureRate);
    }
    if config
        .slow_call_rate_threshold
        .is_some_and(|t| w.slow_call_rate() >= t)
    {
        return Some(TransitionReason::SlowCallRate);
    }
    None
}

/// Whether enough distinct pods reported trouble in the window for a trip
/// to open the circuit fleet-wide.
#[must_use]
pub fn quorum_met(s: &Snapshot, config: &BreakerConfig, now_ms: u64) -> bool {
    config.min_reporting_pods <= 1
        || s.window.counts(config, now_ms).reporting_pods >= u64::from(config.min_reporting_pods)
}

/// A trip condition that holds without its quorum: the pod that reported
/// the outcome opens the agent for itself alone (the fleet stays as it is).
/// `config` is the process's; the agent's settings are applied here.
#[must_use]
pub fn local_trip(s: &Snapshot, config: &BreakerConfig, now_ms: u64) -> Option<TransitionReason> {
    let config = s.effective(config);
    trip_condition(s, &config, now_ms).filter(|_| !quorum_met(s, &config, now_ms))
}

/// `backoff_ms` spread by `backoff_jitter`: `floor(backoff x (1 + d))`,
/// `d = jitter x (2u - 1)` with `u` in [0, 1] from the first 32 bits of
/// SHA-1(`"{agent}:{generation}:{now_ms}"`): the same on every pod, in the
/// model and in the scripts (`redis.sha1hex`), with no random state.
#[must_use]
pub fn jittered(
    backoff_ms: u64,
    config: &BreakerConfig,
    agent: &AgentId,
    generation: u64,
    now_ms: u64,
) -> u64 {
    if config.backoff_jitter <= 0.0 {
        return backoff_ms;
    }
    let digest = sha1_smol::Sha1::from(format!("{agent}:{generation}:{now_ms}")).digest();
    let bytes = digest.bytes();
    let u = f64::from(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
    let d = config.backoff_jitter * (2.0 * u / 4_294_967_295.0 - 1.0);
    // f64 products floored, exactly as the Lua scripts compute them.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let spread = (backoff_ms as f64 * (1.0 + d)).floor() as u64;
    spread
}
