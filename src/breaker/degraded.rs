//! What [`CircuitBreaker`] does without its store: decisions by
//! [`StorePolicy`], degraded mode (entering it, and the recovery that ends
//! it), and the local view health reports meanwhile.

use std::sync::{Arc, PoisonError};

use futures::stream::{self, StreamExt};

use super::store_health::Prober;
use super::{
    CircuitBreaker, Origin, Permit, RejectCause, Rejected, StorePolicy, StoreStats, StoreStatus,
    log_transition,
};
use crate::agent_id::AgentId;
use crate::model::{CircuitState, Outcome, Snapshot, Ticket};
use crate::store::StoreError;
use crate::store::StoreExt;

/// Snapshots read at once by the recovery's resync.
const RESYNC_CONCURRENCY: usize = 16;

impl CircuitBreaker {
    /// Whether the pod decides with its store ([`StoreStatus::Ok`]) or is in
    /// degraded mode, since when and why.
    #[must_use]
    pub fn store_status(&self) -> StoreStatus {
        self.inner.health.status()
    }

    /// Whether the pod is in degraded mode: decisions follow the
    /// [`StorePolicy`] without trying the store.
    #[must_use]
    pub fn is_degraded(&self) -> bool {
        self.inner.health.is_degraded()
    }

    /// Store errors, and entries into and exits from degraded mode, so far.
    #[must_use]
    pub fn store_stats(&self) -> StoreStats {
        self.inner.health.stats()
    }

    /// Decides by policy, without the store (it failed, or the pod is
    /// degraded).
    pub(super) fn decide_by_policy(
        &self,
        agent: &AgentId,
        permit_id: String,
    ) -> Result<Permit, Rejected> {
        match self.policy_for(agent) {
            StorePolicy::FailOpen => Ok(Permit::new(
                self.clone(),
                agent.clone(),
                Ticket {
                    permit_id,
                    generation: 0,
                },
                false,
                Origin::Unrecorded,
            )),
            StorePolicy::FailClosed => Err(Rejected {
                agent: agent.clone(),
                state: CircuitState::Open,
                retry_after: None,
                cause: RejectCause::StoreUnavailable,
            }),
            StorePolicy::FailLocal => {
                let applied = self
                    .inner
                    .fallback
                    .acquire(&self.inner.config, agent, &permit_id);
                log_transition(applied.transition.as_ref());
                self.permit_or_reject(agent, permit_id, applied.value, Origin::Fallback)
            }
        }
    }

    /// Settles a permit the store granted, by policy, without the store:
    /// under `FailLocal` the outcome moves the local fallback (seeded from
    /// the last snapshot), otherwise it is dropped.
    pub(super) fn settle_by_policy(&self, agent: &AgentId, ticket: &Ticket, outcome: Outcome) {
        if self.policy_for(agent) == StorePolicy::FailLocal {
            let transition = self
                .inner
                .fallback
                .record(&self.inner.config, agent, ticket, outcome);
            log_transition(transition.as_ref());
        } else {
            tracing::debug!(agent = %agent, outcome = outcome.as_str(), "outcome not recorded: the store is unavailable");
        }
    }

    /// Counts a failed acquire, record or flush; enters degraded mode after
    /// `degrade_after` store-unavailable errors in a row. A corrupt agent
    /// ([`StoreError::Corrupt`]) is not counted: the store answered, for
    /// that agent alone. Its cache entry is dropped, so the pod asks the
    /// store (and follows the policy) rather than deciding from a snapshot
    /// older than the corruption, and takes the repair's generation whatever
    /// it held.
    pub(super) fn store_failed(&self, error: &StoreError) {
        if let (StoreError::Corrupt { agent, .. }, Some(cache)) = (error, &self.inner.cache) {
            cache.forget(agent);
        }
        if !self.inner.health.failed(error) {
            return;
        }
        {
            let mut prober = self
                .inner
                .prober
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if prober.is_none() {
                *prober =
                    Prober::spawn(Arc::downgrade(&self.inner), Arc::clone(&self.inner.health));
            }
            if prober.is_none() {
                // Nothing could ever end degraded mode: stay per call.
                tracing::debug!(
                    "no tokio runtime to probe the store on: not entering degraded mode"
                );
                return;
            }
        }
        self.inner.health.enter(error);
    }

    /// Ends degraded mode if the store answers: a ping, then every agent
    /// held (in the cache or the fallback) read again from the store, the
    /// fallback's local decisions forgotten, and degraded mode left.
    /// Returns whether the pod is out of degraded mode. Does nothing when
    /// it is not degraded; one recovery runs at a time.
    pub(super) async fn recover(&self) -> bool {
        let health = &self.inner.health;
        let _one_at_a_time = health.recovery.lock().await;
        if !health.is_degraded() {
            return true;
        }
        if let Err(error) = self.inner.store.ping().await {
            health.probe_failed();
            tracing::debug!(%error, "breaker store still unavailable");
            return false;
        }
        let mut agents = self.inner.fallback.agents();
        if let Some(cache) = &self.inner.cache {
            agents.extend(cache.agents());
        }
        agents.sort();
        agents.dedup();
        let (store, config) = (&self.inner.store, &self.inner.config);
        let mut reads = stream::iter(agents)
            .map(|agent| async move {
                let read = store.snapshot(config, &agent).await;
                (agent, read)
            })
            .buffer_unordered(RESYNC_CONCURRENCY);
        while let Some((agent, read)) = reads.next().await {
            match read {
                Ok(Some(applied)) => self.observe(&agent, &applied),
                Ok(None) => self.unknown_to_store(&agent),
                Err(error) if error.is_store_unavailable() => {
                    health.probe_failed();
                    tracing::debug!(agent = %agent, %error, "resync after the outage failed; still degraded");
                    return false;
                }
                Err(error) => {
                    tracing::warn!(agent = %agent, %error, "resync after the outage could not read an agent; its entry will age out");
                }
            }
        }
        // Outcomes decided locally during the outage are not replayed: the
        // store is the truth again.
        self.inner.fallback.clear();
        health.leave();
        // Probe outcomes that missed the store go now, not after their
        // leases lapse.
        self.inner.pending.retry_now();
        true
    }

    /// The store does not know `agent` (it restarted empty, say): forget
    /// what this pod held of it.
    pub(super) fn unknown_to_store(&self, agent: &AgentId) {
        if let Some(cache) = &self.inner.cache {
            cache.forget(agent);
        }
        self.inner.fallback.forget(agent);
    }

    /// What this pod knows of each agent without asking the store, for
    /// health while degraded: the local fallback's state where it decides
    /// for the agent, else the last snapshot the store answered; each with
    /// the time to judge it at (store time, estimated, in ms).
    pub(crate) fn local_view(&self) -> Vec<(AgentId, Snapshot, u64)> {
        let now_ms = self
            .inner
            .cache
            .as_ref()
            .map_or_else(|| self.inner.clock.now_ms(), |cache| cache.store_now_ms());
        self.inner.fallback.view(&self.inner.config, now_ms)
    }
}
