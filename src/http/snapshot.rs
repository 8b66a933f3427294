//! The fleet's health as the routes read it: one read of the store shared
//! by every request within `health_max_age`, and dropped at the next
//! transition this process hears.
//!
//! With 1,000 agents a read is 1,000 snapshot calls; a dashboard per
//! operator, a Prometheus scrape and a few `serve` instances behind a load
//! balancer would multiply that for answers that differ by a few counters.
//! Concurrent requests that find the copy stale wait for one read (single
//! flight) instead of making one each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use futures::StreamExt;

use super::ApiError;
use crate::router::{FailoverRouter, HealthStatus};

/// The default of [`AppState::with_health_max_age`](super::AppState::with_health_max_age).
pub const DEFAULT_HEALTH_MAX_AGE: Duration = Duration::from_millis(500);

/// One read of the fleet's health, and its JSON.
#[derive(Debug)]
pub(super) struct Health {
    pub(super) status: HealthStatus,
    pub(super) json: Bytes,
}

#[derive(Debug)]
struct Copy {
    read_at: Instant,
    /// The transition count when the read started.
    epoch: u64,
    health: Arc<Health>,
}

/// The shared copy; see the [module docs](self).
#[derive(Debug)]
pub(super) struct HealthCache {
    max_age: Duration,
    /// Transitions heard so far: a copy read before the latest one is stale.
    epoch: Arc<AtomicU64>,
    /// Set once the transitions are counted (from the first read).
    listening: Once,
    copy: Mutex<Option<Copy>>,
    /// Held by the one request reading the store for everyone.
    reading: tokio::sync::Mutex<()>,
}

impl HealthCache {
    /// A cache keeping a read for `max_age` (zero: every request reads),
    /// dropped at each transition the router's breaker delivers from the
    /// first read on.
    pub(super) fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            epoch: Arc::new(AtomicU64::new(0)),
            listening: Once::new(),
            copy: Mutex::new(None),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// From the first read on, counts the transitions `router`'s breaker
    /// delivers (a task that ends with the cache or the subscription).
    /// Before a first read there is no copy to drop, so a cache that is
    /// never read (replaced while a state is built) subscribes to nothing.
    fn listen(&self, router: &FailoverRouter) {
        if self.max_age.is_zero() {
            return;
        }
        self.listening.call_once(|| {
            let mut transitions = Box::pin(router.breaker().subscribe());
            let weak = Arc::downgrade(&self.epoch);
            tokio::spawn(async move {
                while transitions.next().await.is_some() {
                    let Some(epoch) = weak.upgrade() else { return };
                    epoch.fetch_add(1, Ordering::AcqRel);
                }
            });
        });
    }

    /// Drops the copy: the next request reads the store (after an admin
    /// change made through this process, say).
    pub(super) fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// How long a read is kept.
    pub(super) fn max_age(&self) -> Duration {
        self.max_age
    }

    fn fresh(&self) -> Option<Arc<Health>> {
        let copy = self.copy.lock().unwrap_or_else(PoisonError::into_inner);
        copy.as_ref()
            .filter(|c| {
                c.read_at.elapsed() < self.max_age && c.epoch == self.epoch.load(Ordering::Acquire)
            })
            .map(|c| Arc::clone(&c.health))
    }

    /// The health, from the copy when it is fresh, else read once for all
    /// the requests waiting.
    ///
    /// # Errors
    ///
    /// The store's, as an [`ApiError`].
    pub(super) async fn get(&self, router: &FailoverRouter) -> Result<Arc<Health>, ApiError> {
        self.listen(router);
        if let Some(health) = self.fresh() {
            return Ok(health);
        }
        let _reading = self.reading.lock().await;
        if let Some(health) = self.fresh() {
            return Ok(health);
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let read_at = Instant::now();
        let status = router.health_status().await?;
        let json = Bytes::from(serde_json::to_vec(&status).map_err(|error| {
            tracing::error!(%error, "the health report could not be encoded");
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            )
        })?);
        let health = Arc::new(Health { status, json });
        if !self.max_age.is_zero() {
            *self.copy.lock().unwrap_or_else(PoisonError::into_inner) = Some(Copy {
                read_at,
                epoch,
                health: Arc::clone(&health),
            });
        }
        Ok(health)
    }
}
