//! The read and admin operations of [`CircuitBreaker`]: metrics, snapshot,
//! reset, force, agents. They always try the store, degraded mode or not,
//! and return its error.

use std::time::Duration;

use super::{AgentMetrics, BreakerError, CircuitBreaker};
use crate::agent_id::AgentId;
use crate::model::{ForceMode, Snapshot, Transition};
use crate::store::StoreExt;
use crate::store::{Applied, Census, StoreError};

impl CircuitBreaker {
    /// The agent's state and counters, in the original JSON shape.
    ///
    /// # Errors
    ///
    /// [`BreakerError::UnknownAgent`] for an agent the store has never seen;
    /// [`BreakerError::Store`] when the store fails.
    pub async fn metrics(&self, agent: &AgentId) -> Result<AgentMetrics, BreakerError> {
        let applied = self.read_snapshot(agent).await?;
        Ok(AgentMetrics::from_snapshot(
            agent,
            &applied.snapshot,
            applied.now_ms,
        ))
    }

    /// The agent's raw snapshot (after lazy expiry).
    ///
    /// # Errors
    ///
    /// As [`metrics`](Self::metrics).
    pub async fn snapshot(&self, agent: &AgentId) -> Result<Snapshot, BreakerError> {
        Ok(self.read_snapshot(agent).await?.snapshot)
    }

    /// The store's snapshot of a known agent, observed by the cache.
    async fn read_snapshot(&self, agent: &AgentId) -> Result<Applied<()>, BreakerError> {
        let applied = self
            .inner
            .store
            .snapshot(&self.inner.config, agent)
            .await?
            .ok_or_else(|| BreakerError::UnknownAgent(agent.clone()))?;
        self.observe(agent, &applied);
        Ok(applied)
    }

    /// The admin reset, fleet-wide: closed, counters zero, backoff base.
    ///
    /// # Errors
    ///
    /// [`BreakerError::UnknownAgent`] for an agent the store has never seen
    /// (nothing is created); [`BreakerError::Store`] when the store fails.
    pub async fn reset(&self, agent: &AgentId) -> Result<Transition, BreakerError> {
        let applied = self.inner.store.reset(&self.inner.config, agent).await?;
        self.admin_result(agent, applied)
    }

    /// The operator override: `Open`, `Closed` for `ttl` (or until changed),
    /// or `Auto` to end a force.
    ///
    /// # Errors
    ///
    /// [`BreakerError::InvalidInput`] for a zero `ttl`;
    /// [`BreakerError::UnknownAgent`] and [`BreakerError::Store`] as
    /// [`reset`](Self::reset).
    pub async fn force(
        &self,
        agent: &AgentId,
        mode: ForceMode,
        ttl: Option<Duration>,
    ) -> Result<Transition, BreakerError> {
        if ttl.is_some_and(|ttl| ttl < Duration::from_millis(1)) {
            return Err(BreakerError::InvalidInput(
                "a force ttl must be at least 1 ms; omit it to force until changed".into(),
            ));
        }
        let applied = self
            .inner
            .store
            .force(&self.inner.config, agent, mode, ttl)
            .await?;
        self.admin_result(agent, applied)
    }

    /// Every agent the store knows, sorted.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Store`] when the store fails.
    pub async fn agents(&self) -> Result<Vec<AgentId>, BreakerError> {
        Ok(self.inner.store.agents().await?)
    }

    /// Many agents' snapshots at once, as a read of each would find them
    /// but with nothing written ([`BreakerStore::read_many`](crate::store::BreakerStore::read_many)):
    /// `Ok(None)` for an agent no pod has called, [`StoreError::Corrupt`]
    /// for a corrupt one; in the order of `agents`.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Store`] when the store fails.
    pub async fn read_many(
        &self,
        agents: &[AgentId],
    ) -> Result<Vec<Result<Option<Snapshot>, StoreError>>, BreakerError> {
        Ok(self
            .inner
            .store
            .read_many(&self.inner.config, agents)
            .await?)
    }

    /// How many agents the store knows (with those of `named` it does not)
    /// and which are not closed, without reading every agent; `None` when
    /// the store cannot tell that cheaply (see [`BreakerStore::census`](crate::store::BreakerStore::census)).
    ///
    /// # Errors
    ///
    /// [`BreakerError::Store`] when the store fails.
    pub async fn census(&self, named: &[AgentId]) -> Result<Option<Census>, BreakerError> {
        Ok(self.inner.store.census(named).await?)
    }

    fn admin_result(
        &self,
        agent: &AgentId,
        applied: Option<Applied<()>>,
    ) -> Result<Transition, BreakerError> {
        let applied = applied.ok_or_else(|| BreakerError::UnknownAgent(agent.clone()))?;
        // The local fallback follows admin actions too (`observe` keeps the
        // snapshot it seeds from, and updates an agent it holds).
        self.observe(agent, &applied);
        applied.transition.ok_or_else(|| {
            BreakerError::Store(StoreError::InvalidData {
                what: format!("admin action on {agent}"),
                detail: "the store reported no transition".into(),
            })
        })
    }
}
