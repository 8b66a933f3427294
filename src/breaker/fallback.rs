//! [`Fallback`]: the local breaker `FailLocal` decides with while the store
//! cannot be reached, and the last snapshot seen of each agent, to seed it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use futures::FutureExt;

use crate::agent_id::AgentId;
use crate::config::BreakerConfig;
use crate::model::{
    CircuitState, Decision, Outcome, Snapshot, Ticket, Transition, TransitionReason,
};
use crate::store::StoreExt;
use crate::store::{Applied, BreakerStore, MemoryStore};

/// A [`MemoryStore`] per pod, seeded per agent from the last snapshot the
/// real store answered (or a fresh closed circuit).
///
/// ## Behavior
///
/// - An agent enters the fallback on its first local decision, seeded from
///   the last snapshot seen: the last one the store answered
///   ([`Fallback::remember`]), moved forward by the transitions the watcher
///   delivered since ([`Fallback::follow`]), so that a circuit another pod
///   opened stays open here. From then on local outcomes move it with the
///   same semantics as the store.
/// - While an agent is held, every snapshot the store answers replaces it,
///   and every newer transition moves it (the store is the truth whenever
///   it answers).
/// - [`Fallback::clear`] forgets every local decision (on leaving degraded
///   mode): outcomes decided locally are never replayed to the store.
#[derive(Debug, Default)]
pub(super) struct Fallback {
    /// Replaced whole by `clear` (the store has no per-agent removal).
    local: RwLock<MemoryStore>,
    /// Whether `local` holds any agent: lets [`Fallback::remember`] skip
    /// its lock in the common case.
    in_use: AtomicBool,
    /// The last snapshot the store answered for each agent.
    last_seen: Mutex<HashMap<AgentId, Snapshot>>,
}

impl Fallback {
    fn local(&self) -> MemoryStore {
        self.local
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn last_seen(&self) -> MutexGuard<'_, HashMap<AgentId, Snapshot>> {
        self.last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a snapshot the store answered, unless `overtaken` says this
    /// pod already knows a newer generation; a local entry follows it.
    /// `overtaken` is asked under the lock [`Fallback::follow`] takes, so a
    /// transition cannot slip in between the check and the write.
    pub(super) fn remember(
        &self,
        agent: &AgentId,
        snapshot: &Snapshot,
        overtaken: impl FnOnce() -> bool,
    ) {
        {
            let mut seen = self.last_seen();
            if overtaken() {
                return;
            }
            seen.insert(agent.clone(), snapshot.clone());
        }
        if self.in_use.load(Ordering::Acquire) {
            let local = self.local();
            if local.contains(agent) {
                local.seed(agent, snapshot.clone());
            }
        }
    }

    /// Moves the last snapshot seen of the transition's agent forward to it
    /// (a transition not newer than that snapshot is old news); a local
    /// entry follows.
    pub(super) fn follow(&self, config: &BreakerConfig, t: &Transition) {
        let moved = {
            let mut seen = self.last_seen();
            let snapshot = seen
                .entry(t.agent_id.clone())
                .or_insert_with(|| Snapshot::fresh(config));
            if t.generation <= snapshot.generation {
                return;
            }
            apply_transition(snapshot, t);
            snapshot.clone()
        };
        if self.in_use.load(Ordering::Acquire) {
            let local = self.local();
            if local.contains(&t.agent_id) {
                local.seed(&t.agent_id, moved);
            }
        }
    }

    /// Notes that the store no longer knows `agent` (it restarted empty, say).
    pub(super) fn forget(&self, agent: &AgentId) {
        self.last_seen().remove(agent);
    }

    /// A local acquire, seeding the agent first if it is not held.
    pub(super) fn acquire(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        permit_id: &str,
    ) -> Applied<Decision> {
        let local = self.hold(config, agent);
        local.acquire_sync(config, agent, permit_id)
    }

    /// A local record of a permit the fallback granted: `None`, and nothing
    /// recorded, when the fallback was cleared since (the store is the truth
    /// again).
    pub(super) fn record_granted(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        ticket: &Ticket,
        outcome: Outcome,
    ) -> Option<Transition> {
        let local = self.local();
        if !local.contains(agent) {
            return None;
        }
        local.record_sync(config, agent, ticket, outcome).transition
    }

    /// A local record of a permit the store granted, whose outcome cannot
    /// reach the store: seeds the agent first if it is not held.
    pub(super) fn record(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        ticket: &Ticket,
        outcome: Outcome,
    ) -> Option<Transition> {
        let local = self.hold(config, agent);
        local.record_sync(config, agent, ticket, outcome).transition
    }

    /// The local breaker, holding `agent` (seeded if it was not).
    fn hold(&self, config: &BreakerConfig, agent: &AgentId) -> MemoryStore {
        let local = self.local();
        if !local.contains(agent) {
            let seed = self.last_seen().get(agent).cloned();
            self.in_use.store(true, Ordering::Release);
            local.seed(agent, seed.unwrap_or_else(|| Snapshot::fresh(config)));
        }
        local
    }

    /// Every agent held locally.
    pub(super) fn agents(&self) -> Vec<AgentId> {
        // The memory store never waits: its future is ready at once.
        self.local()
            .agents()
            .now_or_never()
            .and_then(Result::ok)
            .unwrap_or_default()
    }

    /// Forgets every local decision.
    pub(super) fn clear(&self) {
        let mut local = self.local.write().unwrap_or_else(PoisonError::into_inner);
        // Under the write lock: whoever seeds the new store sets it again.
        self.in_use.store(false, Ordering::Release);
        *local = MemoryStore::new();
    }

    /// What this pod knows of each agent without asking the store: the
    /// local breaker's state where it holds the agent, else the last
    /// snapshot seen; with the time it was read at (ms since the epoch).
    pub(super) fn view(
        &self,
        config: &BreakerConfig,
        now_ms: u64,
    ) -> Vec<(AgentId, Snapshot, u64)> {
        let local = self.local();
        let mut seen: HashMap<AgentId, (Snapshot, u64)> = self
            .last_seen()
            .iter()
            .map(|(agent, snapshot)| (agent.clone(), (snapshot.clone(), now_ms)))
            .collect();
        for agent in self.agents() {
            let applied = local.snapshot(config, &agent).now_or_never();
            if let Some(Ok(Some(applied))) = applied {
                seen.insert(agent, (applied.snapshot, applied.now_ms));
            }
        }
        seen.into_iter()
            .map(|(agent, (snapshot, at))| (agent, snapshot, at))
            .collect()
    }
}

/// What a transition message says of the agent's state after it: the
/// state, generation, backoff and `open_until`, with the counters a close or
/// a reset clears. A transition to `forced_closed` carries no expiry: it is
/// held until changed. Counters the message does not carry are kept.
fn apply_transition(s: &mut Snapshot, t: &Transition) {
    s.state = t.to;
    s.generation = t.generation;
    s.open_until_ms = t.open_until_ms;
    if t.backoff_seconds.is_finite() && t.backoff_seconds >= 0.0 {
        // Whole milliseconds in a message of fractional seconds.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let backoff_ms = (t.backoff_seconds * 1000.0).round() as u64;
        s.backoff_ms = backoff_ms;
    }
    s.half_open_successes = 0;
    s.probes.clear();
    s.forced_until_ms = match t.to {
        CircuitState::ForcedOpen => (t.open_until_ms > 0).then_some(t.open_until_ms),
        _ => None,
    };
    if t.to == CircuitState::Closed {
        s.failure_count = 0;
    }
    if t.reason == TransitionReason::Reset {
        s.success_count = 0;
        s.total_rejections = 0;
    }
    if t.to == CircuitState::Open {
        s.last_failure_ms = Some(t.at_ms);
    }
}
