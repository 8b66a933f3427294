//! The breaker around the store itself: [`StoreStatus`], [`StoreStats`], the
//! consecutive-error count that puts a pod in degraded mode, and the
//! [`Prober`] task that pings the store until it answers again.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{CircuitBreaker, Inner};
use crate::clock::Clock;
use crate::store::StoreError;

/// Whether this pod decides with its store, or alone (DESIGN.md section 5).
///
/// Serialised on its own as `{"status": "ok"}` or `{"status": "degraded",
/// "since_ms": ..., "reason": "..."}`; in [`HealthStatus`](crate::HealthStatus)
/// as `"store": "ok"` or `"store": "degraded"` with
/// `"store_degraded_since_ms"` and `"store_degraded_reason"` beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StoreStatus {
    /// The store answers: decisions are made with it.
    Ok,
    /// Degraded mode: after repeated store-unavailable errors, every
    /// decision follows the [`StorePolicy`](crate::StorePolicy) without
    /// trying the store, until a background ping succeeds.
    Degraded {
        /// When degraded mode began, ms since the Unix epoch (this pod's clock).
        since_ms: u64,
        /// The store error that tipped the pod into degraded mode.
        reason: String,
    },
}

impl StoreStatus {
    /// Whether this is [`StoreStatus::Degraded`].
    #[must_use]
    pub fn is_degraded(&self) -> bool {
        matches!(self, Self::Degraded { .. })
    }
}

/// Counters of the breaker around the store, since the breaker was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    /// Store calls that failed because the store was unreachable or timed
    /// out: acquires, records and flushes, and the prober's pings. Other
    /// store errors (bad data in one agent's hash, a refused command) are
    /// not counted.
    pub errors: u64,
    /// Times the pod entered degraded mode.
    pub degraded_entered: u64,
    /// Times the pod left degraded mode (the store answered again and the
    /// pod resynced from it).
    pub degraded_left: u64,
    /// Probe outcomes that could not be written when their call ended (the
    /// store unavailable, or the pod degraded), kept to be written later.
    pub probe_outcomes_kept: u64,
    /// Kept probe outcomes written once the store answered again.
    pub probe_outcomes_written: u64,
}

/// The default of [`CircuitBreakerBuilder::degrade_after`](super::CircuitBreakerBuilder::degrade_after).
pub const DEFAULT_DEGRADE_AFTER: u32 = 3;

/// The default of [`CircuitBreakerBuilder::store_probe_interval`](super::CircuitBreakerBuilder::store_probe_interval).
pub const DEFAULT_STORE_PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// An outage in progress.
#[derive(Debug, Clone)]
struct Outage {
    since_ms: u64,
    started: Instant,
    reason: String,
}

/// The state of the breaker around the store, shared by the breaker and its
/// prober task.
#[derive(Debug)]
pub(super) struct StoreHealth {
    /// The breaker's clock: when an outage began.
    clock: Arc<dyn Clock>,
    degrade_after: u32,
    probe_interval: Duration,
    /// Mirrors `outage.is_some()`, for the hot path; written under `outage`.
    degraded: AtomicBool,
    outage: Mutex<Option<Outage>>,
    consecutive: AtomicU32,
    errors: AtomicU64,
    entered: AtomicU64,
    left: AtomicU64,
    probes_kept: AtomicU64,
    probes_written: AtomicU64,
    /// Wakes the prober when the pod enters degraded mode.
    wake: Notify,
    /// One recovery at a time (the prober's, or the watcher's resync).
    pub(super) recovery: tokio::sync::Mutex<()>,
}

impl StoreHealth {
    pub(super) fn new(degrade_after: u32, probe_interval: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            degrade_after: degrade_after.max(1),
            probe_interval,
            degraded: AtomicBool::new(false),
            outage: Mutex::new(None),
            consecutive: AtomicU32::new(0),
            errors: AtomicU64::new(0),
            entered: AtomicU64::new(0),
            left: AtomicU64::new(0),
            probes_kept: AtomicU64::new(0),
            probes_written: AtomicU64::new(0),
            wake: Notify::new(),
            recovery: tokio::sync::Mutex::new(()),
        }
    }

    /// How often a degraded pod pings the store.
    pub(super) fn probe_interval(&self) -> Duration {
        self.probe_interval
    }

    pub(super) fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    pub(super) fn status(&self) -> StoreStatus {
        match &*self.lock() {
            None => StoreStatus::Ok,
            Some(outage) => StoreStatus::Degraded {
                since_ms: outage.since_ms,
                reason: outage.reason.clone(),
            },
        }
    }

    pub(super) fn stats(&self) -> StoreStats {
        StoreStats {
            errors: self.errors.load(Ordering::Relaxed),
            degraded_entered: self.entered.load(Ordering::Relaxed),
            degraded_left: self.left.load(Ordering::Relaxed),
            probe_outcomes_kept: self.probes_kept.load(Ordering::Relaxed),
            probe_outcomes_written: self.probes_written.load(Ordering::Relaxed),
        }
    }

    /// Counts a probe outcome kept for later.
    pub(super) fn probe_kept(&self) {
        self.probes_kept.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a kept probe outcome written.
    pub(super) fn probe_written(&self) {
        self.probes_written.fetch_add(1, Ordering::Relaxed);
    }

    /// A store call answered: the consecutive-error count starts again.
    pub(super) fn succeeded(&self) {
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a failed store call; `true` when it is the one that should
    /// tip the pod into degraded mode (the caller then calls
    /// [`enter`](Self::enter)). Errors other than unavailability (bad data
    /// in one agent's hash, a refused command) are not counted: the store
    /// answered, so like an answer they end the run of errors.
    pub(super) fn failed(&self, error: &StoreError) -> bool {
        if !error.is_store_unavailable() {
            self.succeeded();
            return false;
        }
        self.errors.fetch_add(1, Ordering::Relaxed);
        let run = self
            .consecutive
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        run >= self.degrade_after && !self.is_degraded()
    }

    /// Counts a failed probe.
    pub(super) fn probe_failed(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Enters degraded mode; `false` if the pod already was degraded.
    pub(super) fn enter(&self, error: &StoreError) -> bool {
        {
            let mut outage = self.lock();
            if outage.is_some() {
                return false;
            }
            *outage = Some(Outage {
                since_ms: self.clock.now_ms(),
                started: Instant::now(),
                reason: error.to_string(),
            });
            self.degraded.store(true, Ordering::Release);
        }
        self.entered.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            %error,
            consecutive_errors = self.degrade_after,
            "breaker store unavailable: entering degraded mode; decisions follow the store policy \
             without trying the store until a background ping succeeds"
        );
        self.wake.notify_one();
        true
    }

    /// Leaves degraded mode (the caller has resynced).
    pub(super) fn leave(&self) {
        let outage = {
            let mut outage = self.lock();
            let taken = outage.take();
            self.degraded.store(false, Ordering::Release);
            taken
        };
        let Some(outage) = outage else {
            return;
        };
        self.consecutive.store(0, Ordering::Relaxed);
        self.left.fetch_add(1, Ordering::Relaxed);
        let lasted = outage.started.elapsed();
        tracing::info!(
            outage_ms = u64::try_from(lasted.as_millis()).unwrap_or(u64::MAX),
            reason = %outage.reason,
            "breaker store answers again: resynced from it, leaving degraded mode"
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Outage>> {
        self.outage.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The task that pings the store while the pod is degraded, and runs the
/// recovery (resync, then leave degraded mode) on the first answer. Asleep
/// while the store is healthy; stops when the breaker is dropped.
#[derive(Debug)]
pub(super) struct Prober {
    task: JoinHandle<()>,
}

impl Prober {
    /// Spawns the prober on the current tokio runtime; `None` outside one.
    pub(super) fn spawn(breaker: Weak<Inner>, health: Arc<StoreHealth>) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let task = runtime.spawn(async move {
            loop {
                if !health.is_degraded() {
                    // A notification sent before this wait is kept (one permit).
                    health.wake.notified().await;
                    continue;
                }
                tokio::time::sleep(health.probe_interval).await;
                let Some(inner) = breaker.upgrade() else {
                    break;
                };
                CircuitBreaker { inner }.recover().await;
            }
        });
        Some(Self { task })
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout() -> StoreError {
        StoreError::Timeout(Duration::from_millis(100))
    }

    #[test]
    fn only_unavailability_errors_in_a_row_call_for_degraded_mode() {
        let health = StoreHealth::new(
            3,
            DEFAULT_STORE_PROBE_INTERVAL,
            Arc::new(crate::clock::SystemClock),
        );
        assert!(!health.failed(&timeout()));
        assert!(!health.failed(&StoreError::Unavailable("refused".into())));
        let bad_data = StoreError::InvalidData {
            what: "state of agent a".into(),
            detail: "failure_count".into(),
        };
        assert!(!health.failed(&bad_data), "the store answered");
        assert!(!health.failed(&StoreError::Command("ERR".into())));
        assert!(!health.failed(&timeout()));
        assert!(!health.failed(&timeout()));
        assert!(health.failed(&timeout()), "the third in a row");
        assert_eq!(health.stats().errors, 5, "only unavailability is counted");
    }

    #[test]
    fn an_answer_starts_the_run_again() {
        let health = StoreHealth::new(
            2,
            DEFAULT_STORE_PROBE_INTERVAL,
            Arc::new(crate::clock::SystemClock),
        );
        assert!(!health.failed(&timeout()));
        health.succeeded();
        assert!(!health.failed(&timeout()));
        assert!(health.failed(&timeout()));
    }

    #[test]
    fn entering_and_leaving_are_counted_once_each_and_shown() {
        let health = StoreHealth::new(
            1,
            DEFAULT_STORE_PROBE_INTERVAL,
            Arc::new(crate::clock::SystemClock),
        );
        assert_eq!(health.status(), StoreStatus::Ok);
        health.leave();
        assert_eq!(health.stats(), StoreStats::default(), "nothing to leave");

        assert!(health.enter(&timeout()));
        assert!(!health.enter(&timeout()), "already degraded");
        assert!(health.is_degraded());
        assert!(!health.failed(&timeout()), "no second entry while degraded");
        let StoreStatus::Degraded { since_ms, reason } = health.status() else {
            panic!("degraded");
        };
        assert!(since_ms > 0);
        assert!(reason.contains("did not answer"), "{reason}");

        health.leave();
        assert!(!health.is_degraded());
        assert_eq!(health.status(), StoreStatus::Ok);
        let stats = health.stats();
        assert_eq!((stats.degraded_entered, stats.degraded_left), (1, 1));
    }

    #[test]
    fn degrade_after_is_at_least_one() {
        let health = StoreHealth::new(
            0,
            DEFAULT_STORE_PROBE_INTERVAL,
            Arc::new(crate::clock::SystemClock),
        );
        assert!(health.failed(&timeout()));
    }
}
