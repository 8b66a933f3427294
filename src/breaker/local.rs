//! What one pod decides for itself under the trip policies: agents it opened
//! for itself alone (a trip condition held but the quorum of
//! `min_reporting_pods` did not), and which calls are slow.
//!
//! ## Behavior
//!
//! - After each outcome it reported, the pod checks the answered snapshot
//!   with [`model::local_trip`]: a trip condition that holds without its
//!   quorum opens the agent on this pod alone, for the backoff the fleet
//!   would have taken; the fleet's state is untouched.
//! - A local open rejects this pod's calls until it ends (pod clock) or the
//!   fleet opens the agent itself; nothing is written to the store.
//! - With no local open (the common case) the check on `acquire` is one
//!   atomic load, and no clock read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::agent_id::AgentId;
use crate::config::{AgentSettings, BreakerConfig};
use crate::model::{self, Snapshot, TransitionReason};

/// Agents this pod opened for itself, and the settings it saw of agents
/// that have some.
#[derive(Debug, Default)]
pub(super) struct LocalOpens {
    any: AtomicBool,
    /// Agent -> (until, pod clock ms; why).
    opens: Mutex<HashMap<AgentId, (u64, TransitionReason)>>,
    /// The stored settings of agents that have any, as last seen.
    settings: Mutex<HashMap<AgentId, AgentSettings>>,
    any_settings: AtomicBool,
}

impl LocalOpens {
    /// Until when (pod clock) the agent is open on this pod alone, if it
    /// is, and the time `now` read (only then: the common case, no local
    /// open, reads no clock).
    #[inline]
    pub(super) fn until(&self, agent: &AgentId, now: impl FnOnce() -> u64) -> Option<(u64, u64)> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.open_until(agent, now())
    }

    fn open_until(&self, agent: &AgentId, now_ms: u64) -> Option<(u64, u64)> {
        let mut opens = self.opens.lock().unwrap_or_else(PoisonError::into_inner);
        match opens.get(agent) {
            Some(&(until, _)) if now_ms < until => Some((until, now_ms)),
            Some(_) => {
                opens.remove(agent);
                self.any.store(!opens.is_empty(), Ordering::Release);
                None
            }
            None => None,
        }
    }

    /// Looks at an answered snapshot: opens the agent locally when a trip
    /// condition holds without its quorum, ends a local open when the fleet
    /// opened (or closed) it, and keeps the agent's settings.
    pub(super) fn note(
        &self,
        agent: &AgentId,
        snapshot: &Snapshot,
        config: &BreakerConfig,
        store_now_ms: u64,
        pod_now_ms: u64,
    ) {
        self.keep_settings(agent, snapshot.settings);
        match model::local_trip(snapshot, config, store_now_ms) {
            Some(reason) => {
                let effective = snapshot.effective(config);
                let backoff = model::escalate_backoff(snapshot.backoff_ms, &effective);
                let until = pod_now_ms.saturating_add(backoff);
                tracing::warn!(
                    agent = %agent, reason = reason.as_str(), backoff_ms = backoff,
                    "opened on this pod only: the quorum of reporting pods is not met"
                );
                let mut opens = self.opens.lock().unwrap_or_else(PoisonError::into_inner);
                opens.insert(agent.clone(), (until, reason));
                self.any.store(true, Ordering::Release);
            }
            None if self.any.load(Ordering::Acquire) && !snapshot.state.admits_all() => {
                let mut opens = self.opens.lock().unwrap_or_else(PoisonError::into_inner);
                opens.remove(agent);
                self.any.store(!opens.is_empty(), Ordering::Release);
            }
            None => {}
        }
    }

    fn keep_settings(&self, agent: &AgentId, settings: AgentSettings) {
        if settings.is_empty() && !self.any_settings.load(Ordering::Acquire) {
            return;
        }
        let mut all = self.settings.lock().unwrap_or_else(PoisonError::into_inner);
        if settings.is_empty() {
            all.remove(agent);
        } else {
            all.insert(agent.clone(), settings);
        }
        self.any_settings.store(!all.is_empty(), Ordering::Release);
    }

    /// Whether a call of `elapsed` to `agent` is slow: at least the agent's
    /// `slow_call_duration` (its own setting as last seen, else the
    /// process's).
    pub(super) fn is_slow(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        elapsed: Duration,
    ) -> bool {
        let limit = if self.any_settings.load(Ordering::Acquire) {
            let all = self.settings.lock().unwrap_or_else(PoisonError::into_inner);
            all.get(agent).map_or(config.slow_call_duration, |s| {
                s.apply(config).slow_call_duration
            })
        } else {
            config.slow_call_duration
        };
        limit.is_some_and(|limit| elapsed >= limit)
    }

    /// Every local open still running at `now_ms`: agent, time left, why.
    pub(super) fn list(&self, now_ms: u64) -> Vec<(AgentId, Duration, TransitionReason)> {
        let opens = self.opens.lock().unwrap_or_else(PoisonError::into_inner);
        let mut list: Vec<_> = opens
            .iter()
            .filter(|(_, (until, _))| *until > now_ms)
            .map(|(agent, (until, reason))| {
                (
                    agent.clone(),
                    Duration::from_millis(until - now_ms),
                    *reason,
                )
            })
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }
}
