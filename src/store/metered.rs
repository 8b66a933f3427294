//! [`MeteredStore`]: a store that times every call into a [`StoreObserver`].

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    Applied, BreakerStore, Census, FailureRecord, Feed, FleetConfig, Op, RoutingJournal, StoreError,
};
use crate::agent_id::AgentId;
use crate::config::BreakerConfig;
use crate::model::{Decision, Snapshot};

/// What a [`MeteredStore`] reports each call to: the service's Prometheus
/// metrics (`fleet_breaker::http::Metrics`), or anything else.
pub trait StoreObserver: Debug + Send + Sync {
    /// One call `op` (`acquire`, `record`, ..., `ping`, `push_failure`, ...)
    /// took `elapsed` and `failed` or not.
    fn observe_store_op(&self, op: &'static str, elapsed: Duration, failed: bool);
}

/// A [`BreakerStore`] that times every call of the store it wraps, and of
/// its journal, into a [`StoreObserver`], and otherwise behaves as it.
#[derive(Debug, Clone)]
pub struct MeteredStore {
    store: Arc<dyn BreakerStore>,
    observer: Arc<dyn StoreObserver>,
}

impl MeteredStore {
    /// Wraps `store`, reporting to `observer`.
    #[must_use]
    pub fn new(store: Arc<dyn BreakerStore>, observer: Arc<dyn StoreObserver>) -> Self {
        Self { store, observer }
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.observer
            .observe_store_op(op, started.elapsed(), result.is_err());
        result
    }
}

#[async_trait]
impl BreakerStore for MeteredStore {
    async fn apply(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        op: Op<'_>,
    ) -> Result<Option<Applied<Option<Decision>>>, StoreError> {
        self.timed(op.name(), self.store.apply(config, agent, op))
            .await
    }

    async fn agents(&self) -> Result<Vec<AgentId>, StoreError> {
        self.timed("agents", self.store.agents()).await
    }

    async fn read_many(
        &self,
        config: &BreakerConfig,
        agents: &[AgentId],
    ) -> Result<Vec<Result<Option<Snapshot>, StoreError>>, StoreError> {
        self.timed("read_many", self.store.read_many(config, agents))
            .await
    }

    async fn census(&self, named: &[AgentId]) -> Result<Option<Census>, StoreError> {
        self.timed("census", self.store.census(named)).await
    }

    async fn sweep_idle(&self, config: &BreakerConfig) -> Result<u64, StoreError> {
        self.timed("sweep_idle", self.store.sweep_idle(config))
            .await
    }

    async fn fleet_configs(
        &self,
        instance: &str,
        fingerprint: &str,
    ) -> Result<Option<Vec<FleetConfig>>, StoreError> {
        let publish = self.store.fleet_configs(instance, fingerprint);
        self.timed("fleet_configs", publish).await
    }

    fn feed(&self) -> Feed {
        self.store.feed()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed("ping", self.store.ping()).await
    }

    fn kind(&self) -> &'static str {
        self.store.kind()
    }

    fn journal(&self) -> Option<Arc<dyn RoutingJournal>> {
        let journal = self.store.journal()?;
        Some(Arc::new(MeteredJournal {
            journal,
            store: self.clone(),
        }))
    }
}

/// The wrapped store's journal, timed as its operations are.
#[derive(Debug)]
struct MeteredJournal {
    journal: Arc<dyn RoutingJournal>,
    store: MeteredStore,
}

#[async_trait]
impl RoutingJournal for MeteredJournal {
    async fn push_failure(&self, record: &FailureRecord, cap: usize) -> Result<(), StoreError> {
        let push = self.journal.push_failure(record, cap);
        self.store.timed("push_failure", push).await
    }

    async fn recent_failures(&self, limit: usize) -> Result<Vec<FailureRecord>, StoreError> {
        let read = self.journal.recent_failures(limit);
        self.store.timed("recent_failures", read).await
    }

    async fn add_routing_events(&self, n: u64) -> Result<u64, StoreError> {
        let add = self.journal.add_routing_events(n);
        self.store.timed("add_routing_events", add).await
    }

    async fn routing_events(&self) -> Result<u64, StoreError> {
        let read = self.journal.routing_events();
        self.store.timed("routing_events", read).await
    }

    fn failures_skipped(&self) -> u64 {
        self.journal.failures_skipped()
    }
}
