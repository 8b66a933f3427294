//! The read and admin operations of [`CircuitBreaker`]: metrics, snapshot,
//! reset, force, per-agent settings, agents. They always try the store, degraded mode or not,
//! and return its error.

use std::time::Duration;

use super::{AgentMetrics, BreakerError, CircuitBreaker};
use crate::agent_id::AgentId;
use crate::config::{AgentSettings, ConfigError, SETTING_NAMES};
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
        let mut metrics = AgentMetrics::from_snapshot_in(
            agent,
            &applied.snapshot,
            applied.now_ms,
            &self.inner.config,
        );
        self.note_local_open(&mut metrics);
        Ok(metrics)
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

    /// Replaces the settings stored for the agent, fleet-wide: each set
    /// field overrides this process's [`BreakerConfig`](crate::BreakerConfig)
    /// for that agent on every pod, from the next call (see
    /// [`AgentSettings`]); empty settings clear them. Creates an agent no
    /// pod has called yet. Returns the agent's snapshot with the settings
    /// applied.
    ///
    /// ## Behavior
    ///
    /// - Not a transition: the state, counters and generation stay; the
    ///   next acquire or outcome runs under the new settings.
    /// - The settings are checked against this process's config as a whole
    ///   (`max_backoff_ms` no lower than the base backoff the agent would
    ///   then have, say); another pod started with a different config reads
    ///   them too, checking each field's range alone.
    ///
    /// # Errors
    ///
    /// [`BreakerError::InvalidInput`] naming the field and its range for an
    /// invalid value (nothing is written); [`BreakerError::Store`] when the
    /// store fails.
    pub async fn configure(
        &self,
        agent: &AgentId,
        settings: AgentSettings,
    ) -> Result<Snapshot, BreakerError> {
        settings
            .validate(&self.inner.config)
            .map_err(|error| BreakerError::InvalidInput(settings_error(&error)))?;
        let applied = self
            .inner
            .store
            .configure(&self.inner.config, agent, &settings)
            .await?;
        // As for reset: the cache and the local fallback see the new
        // settings at once, not at the next read.
        self.observe(agent, &applied);
        tracing::info!(agent = %agent, settings = ?settings.fields(), "agent settings replaced");
        Ok(applied.snapshot)
    }

    /// The settings stored for the agent (empty when it follows this
    /// process's config).
    ///
    /// # Errors
    ///
    /// As [`metrics`](Self::metrics).
    pub async fn settings(&self, agent: &AgentId) -> Result<AgentSettings, BreakerError> {
        Ok(self.read_snapshot(agent).await?.snapshot.settings)
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

/// A [`ConfigError`] of settings, naming the setting as the settings spell
/// it: the config's `max_backoff` is the setting `max_backoff_ms`.
fn settings_error(error: &ConfigError) -> String {
    let as_setting = format!("{}_ms", error.field);
    if SETTING_NAMES.contains(&as_setting.as_str()) {
        format!("{error} (the setting `{as_setting}`)")
    } else {
        error.to_string()
    }
}
