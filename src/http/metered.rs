//! [`MeteredStore`]: a store that times every call into [`Metrics`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::Metrics;
use crate::agent_id::AgentId;
use crate::config::BreakerConfig;
use crate::model::{Batch, Decision, ForceMode, Outcome, Ticket, Transition};
use crate::store::{Applied, BreakerStore, FailureRecord, RoutingJournal, StoreError, WatchTarget};

/// A [`BreakerStore`] that times every call of the store it wraps into
/// [`Metrics`] (`fleet_breaker_store_op_duration_seconds{op}` and
/// `fleet_breaker_store_op_errors_total{op}`), and otherwise behaves as it.
#[derive(Debug)]
pub struct MeteredStore {
    store: Arc<dyn BreakerStore>,
    metrics: Metrics,
}

impl MeteredStore {
    /// Wraps `store`, counting into `metrics`.
    #[must_use]
    pub fn new(store: Arc<dyn BreakerStore>, metrics: Metrics) -> Self {
        Self { store, metrics }
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .observe_store_op(op, started.elapsed(), result.is_err());
        result
    }
}

#[async_trait]
impl RoutingJournal for MeteredStore {
    async fn push_failure(&self, record: &FailureRecord, cap: usize) -> Result<(), StoreError> {
        self.timed("push_failure", self.store.push_failure(record, cap))
            .await
    }

    async fn recent_failures(&self, limit: usize) -> Result<Vec<FailureRecord>, StoreError> {
        self.timed("recent_failures", self.store.recent_failures(limit))
            .await
    }

    async fn add_routing_events(&self, n: u64) -> Result<u64, StoreError> {
        self.timed("add_routing_events", self.store.add_routing_events(n))
            .await
    }

    async fn routing_events(&self) -> Result<u64, StoreError> {
        self.timed("routing_events", self.store.routing_events())
            .await
    }

    fn failures_skipped(&self) -> u64 {
        self.store.failures_skipped()
    }
}

#[async_trait]
impl BreakerStore for MeteredStore {
    async fn acquire(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        permit_id: &str,
    ) -> Result<Applied<Decision>, StoreError> {
        self.timed("acquire", self.store.acquire(config, agent, permit_id))
            .await
    }

    async fn record(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        ticket: &Ticket,
        outcome: Outcome,
    ) -> Result<Applied<()>, StoreError> {
        self.timed("record", self.store.record(config, agent, ticket, outcome))
            .await
    }

    async fn reset(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
    ) -> Result<Option<Applied<()>>, StoreError> {
        self.timed("reset", self.store.reset(config, agent)).await
    }

    async fn force(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        mode: ForceMode,
        ttl: Option<Duration>,
    ) -> Result<Option<Applied<()>>, StoreError> {
        self.timed("force", self.store.force(config, agent, mode, ttl))
            .await
    }

    async fn snapshot(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
    ) -> Result<Option<Applied<()>>, StoreError> {
        self.timed("snapshot", self.store.snapshot(config, agent))
            .await
    }

    async fn agents(&self) -> Result<Vec<AgentId>, StoreError> {
        self.timed("agents", self.store.agents()).await
    }

    async fn flush(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        batch: &Batch,
    ) -> Result<Option<Applied<()>>, StoreError> {
        self.timed("flush", self.store.flush(config, agent, batch))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed("ping", self.store.ping()).await
    }

    fn kind(&self) -> &'static str {
        self.store.kind()
    }

    fn watch_target(&self) -> Option<WatchTarget> {
        self.store.watch_target()
    }

    fn local_transitions(&self) -> Option<broadcast::Receiver<Transition>> {
        self.store.local_transitions()
    }
}
