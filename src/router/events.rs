//! The fleet-wide count of routing decisions, batched.
//!
//! Each route adds one to a local atomic counter (no round trip); a
//! background task adds the pending count to the store's counter
//! (`INCRBY PREFIX:routing_events` on Redis) every flush interval, and
//! [`FailoverRouter::health_status`](super::FailoverRouter::health_status)
//! flushes before it reads. So one pod sees its own decisions at once and
//! the other pods' up to one flush interval late.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::store::{RoutingJournal, StoreError};

/// Routing decisions counted here and not yet added to the store's counter.
pub(super) struct EventCounter {
    pending: AtomicU64,
    /// The fleet-wide total the store last answered.
    last_total: AtomicU64,
    store: Arc<dyn RoutingJournal>,
    every: Duration,
    flusher_started: AtomicBool,
}

impl fmt::Debug for EventCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventCounter")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl EventCounter {
    pub(super) fn new(store: Arc<dyn RoutingJournal>, every: Duration) -> Arc<Self> {
        Arc::new(Self {
            pending: AtomicU64::new(0),
            last_total: AtomicU64::new(0),
            store,
            every,
            flusher_started: AtomicBool::new(false),
        })
    }

    /// Counts one routing decision; starts the flusher on first use, when a
    /// tokio runtime is running (without one, only explicit flushes count).
    pub(super) fn count(self: &Arc<Self>) {
        self.pending.fetch_add(1, Ordering::Relaxed);
        if !self.flusher_started.load(Ordering::Relaxed)
            && !self.flusher_started.swap(true, Ordering::AcqRel)
        {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(flush_every(Arc::downgrade(self), self.every));
                }
                Err(_) => self.flusher_started.store(false, Ordering::Release),
            }
        }
    }

    /// Adds the pending count to the store's counter; returns the
    /// fleet-wide total.
    ///
    /// A failed add is put back, to be retried by the next flush. (If the
    /// store applied an add but its answer was lost to the timeout, that
    /// batch is counted twice.)
    pub(super) async fn flush(&self) -> Result<u64, StoreError> {
        let n = self.pending.swap(0, Ordering::AcqRel);
        if n == 0 {
            let total = self.store.routing_events().await?;
            self.last_total.store(total, Ordering::Relaxed);
            return Ok(total);
        }
        match self.store.add_routing_events(n).await {
            Ok(total) => {
                self.last_total.store(total, Ordering::Relaxed);
                Ok(total)
            }
            Err(error) => {
                self.pending.fetch_add(n, Ordering::AcqRel);
                Err(error)
            }
        }
    }
}

impl EventCounter {
    /// Without the store: the last fleet-wide total read, plus this pod's
    /// decisions not yet added to it.
    pub(super) fn estimate(&self) -> u64 {
        self.last_total
            .load(Ordering::Relaxed)
            .saturating_add(self.pending.load(Ordering::Relaxed))
    }
}

impl Drop for EventCounter {
    /// The last router handle is gone: hand the pending count to the store
    /// on a spawned task, when a runtime is running.
    fn drop(&mut self) {
        let n = *self.pending.get_mut();
        if n == 0 {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = Arc::clone(&self.store);
            runtime.spawn(async move {
                if let Err(error) = store.add_routing_events(n).await {
                    tracing::warn!(%error, lost = n, "could not flush routing events on shutdown");
                }
            });
        }
    }
}

/// Flushes `counter` every `every`, until the router is dropped.
async fn flush_every(counter: Weak<EventCounter>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate
    loop {
        ticks.tick().await;
        let Some(counter) = counter.upgrade() else {
            return;
        };
        if let Err(error) = counter.flush().await {
            tracing::debug!(%error, "routing events not flushed; will retry");
        }
    }
}
