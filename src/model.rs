//! The pure state machine of DESIGN.md section 2.
//!
//! Every function here is `(snapshot, input, now, config) -> (snapshot',
//! decision, transition)`: no I/O, no clock reads, no randomness. The
//! [`MemoryStore`](crate::store::MemoryStore) applies these functions under a
//! lock; the Lua scripts in `lua/` are the same functions written for Redis,
//! and the differential tests hold the three side by side.
//!
//! ## Behavior
//!
//! - Every operation first *refreshes* the agent: probe leases whose deadline
//!   is at or before `now` are dropped, and an expired force returns the
//!   circuit to closed (a transition of its own).
//! - Every transition increments `generation`, clears the probe leases and is
//!   returned as a [`Transition`]; an operation causes at most one.
//! - An outcome whose permit was granted in another generation, or whose probe
//!   lease has lapsed, only stamps `last_success_ms` / `last_failure_ms`.

use serde::{Deserialize, Serialize};

use crate::agent_id::AgentId;
use crate::config::{AgentSettings, BreakerConfig};

mod policy;
mod types;
mod window;

pub use policy::{jittered, local_trip, quorum_met, trip_condition};
pub use types::{
    CircuitState, Decision, ForceMode, Grant, Lease, Outcome, Report, Snapshot, Ticket, Transition,
    TransitionReason, UnknownState,
};
pub use window::{
    Bucket, MAX_REPORTER_BYTES, Reporter, Window, WindowCounts, bucket_index, reporter_id,
};

/// What [`acquire`] decided, and the transition it caused, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcquireStep {
    /// Granted or rejected.
    pub decision: Decision,
    /// The transition the call caused (open to half-open, or a force expiring).
    pub transition: Option<Transition>,
}

/// Drops lapsed probe leases and ends an expired force.
///
/// Every other operation calls this first; the snapshot script calls it alone.
pub fn refresh(
    s: &mut Snapshot,
    config: &BreakerConfig,
    agent: &AgentId,
    now_ms: u64,
) -> Option<Transition> {
    let config = &s.effective(config);
    refresh_in(s, config, agent, now_ms)
}

/// [`refresh`] under a config the agent's settings are already applied to
/// (what every other operation has in hand).
fn refresh_in(
    s: &mut Snapshot,
    config: &BreakerConfig,
    agent: &AgentId,
    now_ms: u64,
) -> Option<Transition> {
    s.probes.retain(|lease| lease.deadline_ms > now_ms);
    let forced = matches!(
        s.state,
        CircuitState::ForcedOpen | CircuitState::ForcedClosed
    );
    if forced && s.forced_until_ms.is_some_and(|until| now_ms >= until) {
        close(s, config);
        return Some(transition(
            s,
            agent,
            now_ms,
            CircuitState::Closed,
            TransitionReason::ForceExpired,
        ));
    }
    None
}

/// Asks for a permit to call `agent`.
///
/// `permit_id` names the probe lease if the permit is a half-open probe.
pub fn acquire(
    s: &mut Snapshot,
    config: &BreakerConfig,
    agent: &AgentId,
    now_ms: u64,
    permit_id: &str,
) -> AcquireStep {
    let config = &s.effective(config);
    let mut transition_made = refresh_in(s, config, agent, now_ms);
    let decision = match s.state {
        CircuitState::Closed | CircuitState::ForcedClosed => Decision::Granted(Grant {
            generation: s.generation,
            probe: false,
        }),
        CircuitState::ForcedOpen => reject(
            s,
            s.forced_until_ms.map(|until| until.saturating_sub(now_ms)),
        ),
        CircuitState::Open if now_ms < s.open_until_ms => reject(s, Some(s.open_until_ms - now_ms)),
        CircuitState::Open => {
            s.half_open_successes = 0;
            transition_made = Some(transition(
                s,
                agent,
                now_ms,
                CircuitState::HalfOpen,
                TransitionReason::BackoffElapsed,
            ));
            grant_probe(s, config, now_ms, permit_id)
        }
        CircuitState::HalfOpen => {
            let in_use = s.probes.len() as u64 + u64::from(s.half_open_successes);
            if in_use < u64::from(config.half_open_max_calls) {
                grant_probe(s, config, now_ms, permit_id)
            } else {
                let next_lease = s.probes.iter().map(|lease| lease.deadline_ms).min();
                reject(
                    s,
                    next_lease.map(|deadline| deadline.saturating_sub(now_ms)),
                )
            }
        }
    };
    AcquireStep {
        decision,
        transition: transition_made,
    }
}

/// Records the outcome of a call made under `ticket`.
///
/// On a closed circuit the outcome is counted (and, with a rate policy or a
/// quorum, enters the window); a failure with a retry-after opens the
/// circuit at once; any counted outcome then opens it on the first
/// [`trip_condition`] that holds, if the quorum is met. The agent's stored
/// settings override `config` ([`Snapshot::effective`]).
pub fn record(
    s: &mut Snapshot,
    config: &BreakerConfig,
    agent: &AgentId,
    now_ms: u64,
    ticket: &Ticket,
    report: &Report<'_>,
) -> Option<Transition> {
    let config = &s.effective(config);
    let outcome = report.outcome;
    let refreshed = refresh_in(s, config, agent, now_ms);
    if refreshed.is_some() || ticket.generation != s.generation {
        // Granted before the force expired (or in another generation).
        stamp(s, outcome, now_ms);
        return refreshed;
    }
    let retry_after = report
        .retry_after_ms
        .filter(|_| outcome == Outcome::Failure);
    match s.state {
        CircuitState::Closed => {
            count(s, outcome, now_ms);
            if outcome == Outcome::Neutral {
                return None;
            }
            let failed = outcome == Outcome::Failure;
            if config.windowed() {
                let slow = u64::from(report.slow);
                s.window
                    .count(config, now_ms, 1, u64::from(failed), slow, report.pod);
            }
            if let Some(wait) = retry_after {
                return Some(open_for(
                    s,
                    config,
                    agent,
                    now_ms,
                    TransitionReason::RetryAfter,
                    wait,
                ));
            }
            // After every counted outcome: a success can bring the window
            // to `minimum_calls` with the rate already over the threshold.
            let reason = trip_condition(s, config, now_ms)?;
            quorum_met(s, config, now_ms).then(|| open(s, config, agent, now_ms, reason))
        }
        CircuitState::HalfOpen => {
            let Some(index) = s
                .probes
                .iter()
                .position(|l| l.permit_id == ticket.permit_id)
            else {
                // The lease lapsed and its permit went back to the pool.
                stamp(s, outcome, now_ms);
                return None;
            };
            s.probes.remove(index);
            count_probe(s, outcome, now_ms);
            match outcome {
                Outcome::Success => {
                    s.half_open_successes += 1;
                    if s.half_open_successes >= config.half_open_max_calls {
                        close(s, config);
                        return Some(transition(
                            s,
                            agent,
                            now_ms,
                            CircuitState::Closed,
                            TransitionReason::ProbesSucceeded,
                        ));
                    }
                    None
                }
                Outcome::Failure => Some(match retry_after {
                    Some(wait) => {
                        open_for(s, config, agent, now_ms, TransitionReason::RetryAfter, wait)
                    }
                    None => open(s, config, agent, now_ms, TransitionReason::ProbeFailed),
                }),
                Outcome::Neutral => None,
            }
        }
        CircuitState::Open | CircuitState::ForcedOpen | CircuitState::ForcedClosed => {
            count(s, outcome, now_ms);
            None
        }
    }
}

/// Outcomes a pod counted locally, to be applied in one batch.
///
/// A pod admits calls to a circuit it knows is closed and clean (failure
/// count zero fleet-wide) without a round trip, counts their successes and
/// its local rejections, and flushes them with [`flush`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The generation the successes were counted in.
    pub generation: u64,
    /// Successes counted locally.
    pub successes: u64,
    /// Time of the last of them, ms since the epoch (store time), if any.
    pub last_success_ms: Option<u64>,
    /// Calls rejected locally.
    pub rejections: u64,
}

/// Applies a [`Batch`].
///
/// Rejections always add to `total_rejections`. The successes add to
/// `success_count` only while the circuit is still closed, in the batch's
/// generation and clean (`failure_count == 0`): a success must never reset a
/// failure streak it did not see. Otherwise they only stamp the time, like a
/// stale outcome. `last_success_ms` never moves back. With a rate policy or a
/// quorum, the successes of a closed circuit in the batch's generation are
/// calls of the window's current bucket.
pub fn flush(
    s: &mut Snapshot,
    config: &BreakerConfig,
    agent: &AgentId,
    now_ms: u64,
    batch: &Batch,
) -> Option<Transition> {
    let config = &s.effective(config);
    let refreshed = refresh_in(s, config, agent, now_ms);
    s.total_rejections += batch.rejections;
    let counted = s.state == CircuitState::Closed && s.generation == batch.generation;
    if counted && s.failure_count == 0 {
        s.success_count += batch.successes;
    }
    if counted && batch.successes > 0 && config.windowed() {
        // Calls of the window, clean or not: they land in the flush's bucket.
        s.window.count(config, now_ms, batch.successes, 0, 0, "-");
        // They may bring the window to `minimum_calls` over a threshold.
        if let Some(reason) = trip_condition(s, config, now_ms)
            && refreshed.is_none()
            && quorum_met(s, config, now_ms)
        {
            if let Some(at) = batch.last_success_ms {
                s.last_success_ms = Some(s.last_success_ms.map_or(at, |last| last.max(at)));
            }
            return Some(open(s, config, agent, now_ms, reason));
        }
    }
    if let Some(at) = batch.last_success_ms {
        s.last_success_ms = Some(s.last_success_ms.map_or(at, |last| last.max(at)));
    }
    refreshed
}

/// The admin reset: closed, counters zero, backoff base, probes cleared.
pub fn reset(s: &mut Snapshot, config: &BreakerConfig, agent: &AgentId, now_ms: u64) -> Transition {
    let config = &s.effective(config);
    close(s, config);
    s.success_count = 0;
    s.total_rejections = 0;
    transition(
        s,
        agent,
        now_ms,
        CircuitState::Closed,
        TransitionReason::Reset,
    )
}

/// The operator override: force open, force closed, or back to automatic.
///
/// `ttl_ms` bounds a force; `None` holds it until changed. `Auto` ignores it.
pub fn force(
    s: &mut Snapshot,
    config: &BreakerConfig,
    agent: &AgentId,
    now_ms: u64,
    mode: ForceMode,
    ttl_ms: Option<u64>,
) -> Transition {
    let config = &s.effective(config);
    let forced_until = ttl_ms.map(|ttl| now_ms.saturating_add(ttl));
    let (to, reason) = match mode {
        ForceMode::Auto => {
            close(s, config);
            (CircuitState::Closed, TransitionReason::ForceCleared)
        }
        ForceMode::Open => {
            s.open_until_ms = forced_until.unwrap_or(0);
            (CircuitState::ForcedOpen, TransitionReason::Forced)
        }
        ForceMode::Closed => {
            s.open_until_ms = 0;
            (CircuitState::ForcedClosed, TransitionReason::Forced)
        }
    };
    if mode != ForceMode::Auto {
        s.forced_until_ms = forced_until;
        s.half_open_successes = 0;
    }
    transition(s, agent, now_ms, to, reason)
}

/// The backoff after one more opening: `min(floor(backoff x multiplier), max)`.
#[must_use]
pub fn escalate_backoff(backoff_ms: u64, config: &BreakerConfig) -> u64 {
    // f64 products floored, exactly as the Lua scripts compute them.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let next = (backoff_ms as f64 * config.backoff_multiplier).floor() as u64;
    next.min(config.max_backoff_ms())
}

fn reject(s: &mut Snapshot, retry_after_ms: Option<u64>) -> Decision {
    s.total_rejections += 1;
    Decision::Rejected {
        state: s.state,
        retry_after_ms,
    }
}

fn grant_probe(s: &mut Snapshot, config: &BreakerConfig, now_ms: u64, permit_id: &str) -> Decision {
    s.probes.retain(|lease| lease.permit_id != permit_id);
    s.probes.push(Lease {
        permit_id: permit_id.to_owned(),
        deadline_ms: now_ms.saturating_add(config.recovery_timeout_ms()),
    });
    s.probes
        .sort_by(|a, b| (a.deadline_ms, &a.permit_id).cmp(&(b.deadline_ms, &b.permit_id)));
    Decision::Granted(Grant {
        generation: s.generation,
        probe: true,
    })
}

/// Counts an outcome of the current generation.
fn count(s: &mut Snapshot, outcome: Outcome, now_ms: u64) {
    match outcome {
        Outcome::Success => {
            s.failure_count = 0;
            s.success_count += 1;
        }
        Outcome::Failure => {
            s.failure_count += 1;
            s.success_count = 0;
        }
        Outcome::Neutral => {}
    }
    stamp(s, outcome, now_ms);
}

/// Counts a probe's outcome. `failure_count` counts consecutive failures
/// in the closed state only, so a probe leaves it as the opening left it
/// (the threshold); a probe failure still ends the success streak.
fn count_probe(s: &mut Snapshot, outcome: Outcome, now_ms: u64) {
    match outcome {
        Outcome::Success => s.success_count += 1,
        Outcome::Failure => s.success_count = 0,
        Outcome::Neutral => {}
    }
    stamp(s, outcome, now_ms);
}

/// Stamps the time of an outcome, and nothing else.
fn stamp(s: &mut Snapshot, outcome: Outcome, now_ms: u64) {
    match outcome {
        Outcome::Success => s.last_success_ms = Some(now_ms),
        Outcome::Failure => s.last_failure_ms = Some(now_ms),
        Outcome::Neutral => {}
    }
}

fn open(
    s: &mut Snapshot,
    config: &BreakerConfig,
    agent: &AgentId,
    now_ms: u64,
    reason: TransitionReason,
) -> Transition {
    open_for(s, config, agent, now_ms, reason, 0)
}

/// Opens for the escalated backoff (jittered), or `retry_after_ms` if longer
/// (capped at `max_backoff`).
fn open_for(
    s: &mut Snapshot,
    config: &BreakerConfig,
    agent: &AgentId,
    now_ms: u64,
    reason: TransitionReason,
    retry_after_ms: u64,
) -> Transition {
    s.backoff_ms = escalate_backoff(s.backoff_ms, config);
    let wait = jittered(s.backoff_ms, config, agent, s.generation + 1, now_ms)
        .max(retry_after_ms.min(config.max_backoff_ms()));
    s.open_until_ms = now_ms.saturating_add(wait);
    s.half_open_successes = 0;
    transition(s, agent, now_ms, CircuitState::Open, reason)
}

/// The closed, clean state shared by a close, a reset and a force ending.
fn close(s: &mut Snapshot, config: &BreakerConfig) {
    s.failure_count = 0;
    s.half_open_successes = 0;
    s.backoff_ms = config.base_backoff_ms();
    s.open_until_ms = 0;
    s.forced_until_ms = None;
    s.window.clear();
}

/// Replaces the agent's stored settings (not a transition: the state and
/// the generation stay; the next operation runs under the new settings).
pub fn configure(s: &mut Snapshot, settings: AgentSettings) {
    s.settings = settings;
}

fn transition(
    s: &mut Snapshot,
    agent: &AgentId,
    now_ms: u64,
    to: CircuitState,
    reason: TransitionReason,
) -> Transition {
    let from = s.state;
    s.state = to;
    s.generation += 1;
    s.probes.clear();
    Transition {
        agent_id: agent.clone(),
        from,
        to,
        generation: s.generation,
        at_ms: now_ms,
        reason,
        backoff_seconds: backoff_seconds(s.backoff_ms),
        open_until_ms: s.open_until_ms,
        epoch: s.epoch,
    }
}

/// Milliseconds as fractional seconds, as the transition message carries them.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn backoff_seconds(backoff_ms: u64) -> f64 {
    backoff_ms as f64 / 1000.0
}

#[cfg(test)]
mod tests;
