//! The fleet's health as the routes read it: one read of the store shared
//! by every request that arrives while it is in flight, kept for
//! `health_max_age` after it ends, and dropped at the next transition this
//! process hears.
//!
//! With 1,000 agents a read is 1,000 snapshot calls; a dashboard per
//! operator, a Prometheus scrape and a few `serve` instances behind a load
//! balancer would multiply that for answers that differ by a few counters.
//!
//! ## Behavior
//!
//! - A request that finds a fresh copy (younger than `max_age`, read since
//!   the last transition) is answered from it.
//! - Else, a request that arrives while a read is in flight, started since
//!   the last transition, waits for that read, whatever its length: at
//!   100,000 agents a read takes longer than `max_age`, and 20 concurrent
//!   requests cost one read, not 20 in a row.
//! - Else it starts a read. Reads run one at a time: a read started after
//!   a transition waits for the one in flight to end first, and requests
//!   arriving meanwhile wait for it too.
//! - A read runs in a task of its own: a client that hangs up does not
//!   cancel it for the others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt, Shared};

use super::ApiError;
use crate::router::{FailoverRouter, HealthStatus};

/// The default of [`AppState::with_health_max_age`](super::AppState::with_health_max_age).
pub const DEFAULT_HEALTH_MAX_AGE: Duration = Duration::from_millis(500);

/// One read of the fleet's health, and its JSON.
#[derive(Debug)]
pub(super) struct Health {
    pub(super) status: HealthStatus,
    pub(super) json: Bytes,
    /// When the read ended: the copy is kept `max_age` from then (a read of
    /// 100,000 agents outlasts 500 ms; transitions drop it in any case).
    read_at: Instant,
    /// The transition count when the read started.
    epoch: u64,
}

type Read = Shared<BoxFuture<'static, Result<Arc<Health>, ApiError>>>;

#[derive(Default)]
struct Slots {
    /// The last read that succeeded.
    copy: Option<Arc<Health>>,
    /// The read requests wait for, and the transition count it was started at.
    in_flight: Option<(u64, Read)>,
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slots")
            .field("copy_read_at", &self.copy.as_ref().map(|c| c.read_at))
            .field(
                "in_flight",
                &self.in_flight.as_ref().map(|(epoch, _)| epoch),
            )
            .finish()
    }
}

/// The shared copy; see the [module docs](self).
#[derive(Debug)]
pub(super) struct HealthCache {
    max_age: Duration,
    /// Transitions heard so far: a copy read before the latest one is stale.
    epoch: Arc<AtomicU64>,
    /// Set once the transitions are counted (from the first read).
    listening: Once,
    slots: Mutex<Slots>,
    /// Held by the read running: reads run one at a time.
    reading: Arc<tokio::sync::Mutex<()>>,
    /// Reads of the store started so far.
    reads: AtomicU64,
}

impl HealthCache {
    /// A cache keeping a read for `max_age` (zero: a request joins a read
    /// in flight, or starts one), dropped at each transition the router's
    /// breaker delivers from the first read on.
    pub(super) fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            epoch: Arc::new(AtomicU64::new(0)),
            listening: Once::new(),
            slots: Mutex::new(Slots::default()),
            reading: Arc::new(tokio::sync::Mutex::new(())),
            reads: AtomicU64::new(0),
        }
    }

    /// From the first read on, counts the transitions `router`'s breaker
    /// delivers (a task that ends with the cache or the subscription).
    /// Before a first read there is no copy to drop, so a cache that is
    /// never read (replaced while a state is built) subscribes to nothing.
    fn listen(&self, router: &FailoverRouter) {
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

    /// Reads of the store started so far (requests served from a copy or
    /// by joining a read in flight start none).
    pub(super) fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The health, from the copy when it is fresh, else from the read in
    /// flight, else from a read started now; see the [module docs](self).
    ///
    /// # Errors
    ///
    /// The store's, as an [`ApiError`].
    pub(super) async fn get(&self, router: &FailoverRouter) -> Result<Arc<Health>, ApiError> {
        self.listen(router);
        let read = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let epoch = self.epoch.load(Ordering::Acquire);
            self.settle(&mut slots);
            if let Some(copy) = slots.copy.as_ref().filter(|c| self.is_fresh(c, epoch)) {
                return Ok(Arc::clone(copy));
            }
            match &slots.in_flight {
                Some((started, read)) if *started == epoch => read.clone(),
                _ => {
                    let read = self.start(router, epoch);
                    slots.in_flight = Some((epoch, read.clone()));
                    read
                }
            }
        };
        let health = read.await;
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        self.settle(&mut slots);
        health
    }

    fn is_fresh(&self, copy: &Health, epoch: u64) -> bool {
        copy.epoch == epoch && copy.read_at.elapsed() < self.max_age
    }

    /// Moves a read that has ended out of flight, into the copy when it
    /// succeeded and is newer.
    fn settle(&self, slots: &mut Slots) {
        let Some((_, read)) = &slots.in_flight else {
            return;
        };
        let Some(result) = read.peek() else { return };
        if let Ok(health) = result {
            let newer = slots
                .copy
                .as_ref()
                .is_none_or(|copy| copy.read_at <= health.read_at);
            if newer && !self.max_age.is_zero() {
                slots.copy = Some(Arc::clone(health));
            }
        }
        slots.in_flight = None;
    }

    /// A read of the store in a task of its own, once the read in flight
    /// (if any) has ended.
    fn start(&self, router: &FailoverRouter, epoch: u64) -> Read {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let router = router.clone();
        let reading = Arc::clone(&self.reading);
        let current = Arc::clone(&self.epoch);
        let task = tokio::spawn(async move {
            let _one_at_a_time = reading.lock().await;
            // Transitions heard while this read waited are in what it reads.
            let epoch = current.load(Ordering::Acquire).max(epoch);
            read(&router, epoch).await
        });
        async move {
            task.await.unwrap_or_else(|error| {
                tracing::error!(%error, "the health read failed");
                Err(internal())
            })
        }
        .boxed()
        .shared()
    }
}

/// One read of the store, and its JSON.
async fn read(router: &FailoverRouter, epoch: u64) -> Result<Arc<Health>, ApiError> {
    let status = router.health_status().await?;
    let read_at = Instant::now();
    let mut json = serde_json::to_vec(&status).map_err(|error| {
        tracing::error!(%error, "the health report could not be encoded");
        internal()
    })?;
    let agreement = router.breaker().config_agreement();
    if agreement.is_mismatch() {
        // Rare, and the report may hold 100,000 agents: the field is
        // spliced before the closing brace, not added to a copy as a Value.
        let field = serde_json::to_vec(&agreement).map_err(|_| internal())?;
        if json.pop() == Some(b'}') {
            json.extend_from_slice(b",\"config_mismatch\":");
            json.extend_from_slice(&field);
            json.push(b'}');
        }
    }
    let json = Bytes::from(json);
    Ok(Arc::new(Health {
        status,
        json,
        read_at,
        epoch,
    }))
}

fn internal() -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}
