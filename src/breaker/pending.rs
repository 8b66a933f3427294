//! [`PendingProbes`]: probe outcomes the store could not take, kept and
//! written once it answers again (issue 12.4).
//!
//! Without this, a probe outcome lost to a store outage leaves its lease in
//! the store until `recovery_timeout` (30 s by default): the half-open
//! circuit counts the probe as in flight and refuses every other probe, so
//! a healthy agent stays locked out long after the store is back.
//!
//! ## Behavior
//!
//! - A probe permit granted by the store whose outcome (success, failure or
//!   neutral, a dropped permit included) cannot be written, because the
//!   store is unavailable (a timeout, a lost connection) or the pod is in
//!   degraded mode, is queued here, besides what the store policy does
//!   with it locally. Other outcomes are not queued (see
//!   [`is_idempotent`]).
//! - The queue is written as soon as the store answers: right after the
//!   pod leaves degraded mode, else every `store_probe_interval` while
//!   writes fail. An outcome is dropped when its lease has surely lapsed
//!   (`recovery_timeout` after it was queued: the store would only stamp
//!   its time), when this pod knows the circuit moved to a newer
//!   generation, or when the store refuses it for another reason.
//! - At most once: a record names its permit id, and the store applies a
//!   probe outcome only while that permit's lease is held, removing it.
//!   If the first write did reach the store (only its reply was lost), the
//!   lease is gone (or the circuit has moved to a newer generation), so
//!   the retry only stamps `last_success_ms` / `last_failure_ms`, and
//!   counts nothing (DESIGN.md section 2, stale outcomes).
//! - At most [`MAX_PENDING`] outcomes wait (there are at most
//!   `half_open_max_calls` probes per agent); beyond that the oldest go.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{CircuitBreaker, Inner};
use crate::agent_id::AgentId;
use crate::model::{Outcome, Ticket};
use crate::store::StoreError;
use crate::store::StoreExt;
use crate::task::LazyTask;

/// Outcomes kept at most.
pub(super) const MAX_PENDING: usize = 4096;

/// One outcome to write.
#[derive(Debug, Clone)]
struct Pending {
    agent: AgentId,
    ticket: Ticket,
    outcome: Outcome,
    /// After this, the lease has lapsed in the store anyway.
    expires: Instant,
}

/// The queue and the task that empties it.
#[derive(Debug, Default)]
pub(super) struct PendingProbes {
    queue: Mutex<VecDeque<Pending>>,
    signal: Arc<Signal>,
    task: LazyTask,
}

/// Whether an outcome may be written again after a write whose fate is
/// unknown: only a probe's, which the store applies once per permit id (its
/// lease). An outcome on a closed circuit carries no such key: writing it
/// twice would count a failure twice, so it is never retried.
pub(super) fn is_idempotent(probe: bool, ticket: &Ticket) -> bool {
    probe && !ticket.permit_id.is_empty()
}

impl PendingProbes {
    fn queue(&self) -> MutexGuard<'_, VecDeque<Pending>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many outcomes wait.
    pub(super) fn len(&self) -> usize {
        self.queue().len()
    }

    /// Queues an outcome and wakes the task, started on first use (outside
    /// a tokio runtime there is none: the outcome waits until one is kept
    /// inside a runtime, or lapses like its lease).
    pub(super) fn push(
        &self,
        breaker: Weak<Inner>,
        lease: Duration,
        agent: &AgentId,
        ticket: &Ticket,
        outcome: Outcome,
    ) {
        {
            let mut queue = self.queue();
            if queue.len() >= MAX_PENDING {
                queue.pop_front();
                tracing::warn!("too many probe outcomes wait for the store: the oldest is dropped");
            }
            queue.push_back(Pending {
                agent: agent.clone(),
                ticket: ticket.clone(),
                outcome,
                expires: Instant::now() + lease,
            });
        }
        self.task.ensure(|| {
            let runtime = tokio::runtime::Handle::try_current().ok()?;
            Some(runtime.spawn(run(breaker, Arc::clone(&self.signal))))
        });
        self.signal.wake.notify_one();
    }

    /// Has the task write at once: the store answers again.
    pub(super) fn retry_now(&self) {
        self.signal.urgent.store(true, Ordering::Release);
        self.signal.wake.notify_one();
    }

    fn take(&self) -> Vec<Pending> {
        self.queue().drain(..).collect()
    }

    fn put_back(&self, pending: Vec<Pending>) {
        let mut queue = self.queue();
        for item in pending.into_iter().rev() {
            if queue.len() >= MAX_PENDING {
                break;
            }
            queue.push_front(item);
        }
    }
}

/// What wakes the task.
#[derive(Debug, Default)]
struct Signal {
    /// Something was queued, or the store answers again.
    wake: Notify,
    /// The store answers again (the pod left degraded mode): write now.
    urgent: AtomicBool,
}

/// The task: writes the queue one `store_probe_interval` after an outcome
/// was kept (the store just failed: an immediate retry would likely fail
/// too), at once when the pod leaves degraded mode, and every interval
/// while writes fail. Nothing is written while the pod is degraded.
async fn run(breaker: Weak<Inner>, signal: Arc<Signal>) {
    let mut next_try: Option<Instant> = None;
    loop {
        let (empty, degraded, interval) = {
            let Some(inner) = breaker.upgrade() else {
                break;
            };
            (
                inner.pending.len() == 0,
                inner.health.is_degraded(),
                inner.health.probe_interval(),
            )
        };
        if empty {
            next_try = None;
            // A recovery with nothing to write leaves nothing urgent.
            signal.urgent.store(false, Ordering::Release);
            signal.wake.notified().await;
            continue;
        }
        let now = Instant::now();
        let urgent = signal.urgent.swap(false, Ordering::AcqRel);
        if !degraded && (urgent || next_try.is_some_and(|at| at <= now)) {
            next_try = None;
            let Some(inner) = breaker.upgrade() else {
                break;
            };
            if (CircuitBreaker { inner }).write_pending().await {
                continue;
            }
        }
        let at = match next_try {
            Some(at) if at > now => at,
            _ => Instant::now() + interval,
        };
        next_try = Some(at);
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            () = signal.wake.notified() => {}
        }
    }
}

impl CircuitBreaker {
    /// Writes every pending probe outcome; `false` when the store was
    /// unavailable (what failed is kept for the next try).
    async fn write_pending(&self) -> bool {
        let pending = self.inner.pending.take();
        let now = Instant::now();
        let (config, store) = (&self.inner.config, &self.inner.store);
        let writes = pending
            .into_iter()
            .filter(|p| p.expires > now && !self.overtaken(&p.agent, &p.ticket))
            .map(|p| async move {
                let written = store.record(config, &p.agent, &p.ticket, p.outcome).await;
                (p, written)
            });
        let mut failed = Vec::new();
        for (p, written) in futures::future::join_all(writes).await {
            match written {
                Ok(applied) => {
                    self.inner.health.succeeded();
                    self.inner.health.probe_written();
                    tracing::info!(agent = %p.agent, outcome = p.outcome.as_str(), generation = p.ticket.generation, "probe outcome written after the store came back");
                    self.observe(&p.agent, &applied);
                }
                Err(error) if error.is_store_unavailable() => {
                    self.store_failed(&error);
                    failed.push(p);
                }
                Err(error) => log_dropped(&p, &error),
            }
        }
        let ok = failed.is_empty();
        self.inner.pending.put_back(failed);
        ok
    }

    /// Whether this pod knows `agent`'s circuit moved past the ticket's
    /// generation (the outcome would only stamp its time).
    fn overtaken(&self, agent: &AgentId, ticket: &Ticket) -> bool {
        self.inner.cache.as_ref().is_some_and(|cache| {
            cache
                .generation(agent)
                .is_some_and(|generation| generation > ticket.generation)
        })
    }
}

fn log_dropped(p: &Pending, error: &StoreError) {
    tracing::warn!(agent = %p.agent, outcome = p.outcome.as_str(), %error, "a probe outcome could not be written: dropped");
}
