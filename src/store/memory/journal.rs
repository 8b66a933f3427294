//! [`RoutingJournal`] for [`MemoryStore`]: the failures record and the
//! routing-decision counter, in memory, shared by the store's clones.
//!
//! A child module of the memory store, so it can reach its private state.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use super::MemoryStore;
use crate::store::StoreError;
use crate::store::journal::{FailureRecord, RoutingJournal};

/// The journal's state, held in the memory store's shared inner part.
#[derive(Debug, Default)]
pub(super) struct MemoryJournal {
    /// Newest first, at most the cap of the last push.
    failures: Mutex<VecDeque<FailureRecord>>,
    routing_events: AtomicU64,
}

#[async_trait]
impl RoutingJournal for MemoryStore {
    async fn push_failure(&self, record: &FailureRecord, cap: usize) -> Result<(), StoreError> {
        let mut failures = self
            .inner
            .journal
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        failures.push_front(record.clone());
        failures.truncate(cap);
        Ok(())
    }

    async fn recent_failures(&self, limit: usize) -> Result<Vec<FailureRecord>, StoreError> {
        let failures = self
            .inner
            .journal
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(failures.iter().take(limit).cloned().collect())
    }

    async fn add_routing_events(&self, n: u64) -> Result<u64, StoreError> {
        let counter = &self.inner.journal.routing_events;
        Ok(counter.fetch_add(n, Ordering::Relaxed).saturating_add(n))
    }

    async fn routing_events(&self) -> Result<u64, StoreError> {
        Ok(self.inner.journal.routing_events.load(Ordering::Relaxed))
    }
}
