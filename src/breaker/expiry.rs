//! [`ForceTimers`]: a force with a TTL ends on time fleet-wide, even if no
//! call touches the agent (issue 11.5), on a store shared through Redis.
//!
//! A force ends lazily, in the script of the next operation on the agent.
//! Each pod with a subscription therefore keeps a timer per forced agent it
//! knows of, and at the expiry reads the agent's snapshot: the snapshot
//! script applies the lazy expiry alone (no call counted, no permit), and
//! being atomic, N pods firing at once make one transition, one stream entry
//! and so one webhook. The embedded store has a timer of its own.
//!
//! ## Behavior
//!
//! - Every store answer the breaker observes notes a force with an expiry
//!   (timer at `forced_until_ms`, judged against the store's own clock in
//!   that answer, so no clock offset is involved) or cancels a timer for an
//!   agent no longer forced. An answer costs one check when no timer is
//!   pending; the cached path costs nothing.
//! - A `forced` transition from the watcher (another pod or the CLI forced
//!   the agent; its message does not carry a forced-closed expiry) makes
//!   the pod read the agent's snapshot at once, which notes the expiry.
//!   A pod started later learns of a force from its first answer about the
//!   agent: a call, the resync after a reconnection, a health or metrics read.
//! - A read that fails is tried again every 250 ms, up to 40 times; after
//!   that the force still ends lazily, at the next operation.
//! - One task per breaker, asleep until the earliest timer; it stops with
//!   the breaker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{CircuitBreaker, Inner};
use crate::agent_id::AgentId;
use crate::model::{CircuitState, Snapshot, Transition, TransitionReason};
use crate::store::StoreExt;

/// Between two tries of a read that failed.
const RETRY: Duration = Duration::from_millis(250);
/// Tries of one read before the timer gives up (10 s of retries).
const MAX_TRIES: u32 = 40;

/// One pending read of an agent's snapshot.
#[derive(Debug, Clone, Copy)]
struct Due {
    /// When to read.
    at: Instant,
    /// The generation the timer was set in: older news does not move it.
    generation: u64,
    /// The expiry it waits for (store ms); `None` for "read now to learn it".
    until_ms: Option<u64>,
    /// Reads tried and failed so far.
    tries: u32,
}

#[derive(Debug, Default)]
struct Shared {
    due: Mutex<HashMap<AgentId, Due>>,
    /// Whether `due` may hold anything: spares answers about unforced
    /// agents the lock.
    any: AtomicBool,
    wake: Notify,
}

impl Shared {
    fn due(&self) -> MutexGuard<'_, HashMap<AgentId, Due>> {
        self.due.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets `agent`'s timer unless a newer generation's is there.
    fn set(&self, agent: &AgentId, due: Due) {
        let mut map = self.due();
        let earliest = map.values().map(|d| d.at).min();
        if let Some(known) = map.get(agent) {
            let stale = match due.until_ms {
                // A read to learn the expiry, or a retry: anything known of
                // this generation or a newer one will do.
                None => known.generation >= due.generation,
                Some(_) => {
                    known.generation > due.generation
                        || (known.generation == due.generation && known.until_ms == due.until_ms)
                }
            };
            if stale {
                return;
            }
        }
        map.insert(agent.clone(), due);
        self.any.store(true, Ordering::Release);
        drop(map);
        if earliest.is_none_or(|at| due.at < at) {
            self.wake.notify_one();
        }
    }

    /// Cancels `agent`'s timer if it is not newer than `generation`.
    fn cancel(&self, agent: &AgentId, generation: u64) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut map = self.due();
        if map.get(agent).is_some_and(|d| d.generation <= generation) {
            map.remove(agent);
        }
        if map.is_empty() {
            self.any.store(false, Ordering::Release);
        }
    }
}

/// The timers of one breaker; see the [module docs](self).
#[derive(Debug)]
pub(super) struct ForceTimers {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl ForceTimers {
    /// Spawns the task on the current tokio runtime.
    pub(super) fn spawn(breaker: Weak<Inner>) -> Self {
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(run(breaker, Arc::clone(&shared)));
        Self { shared, task }
    }

    /// Notes what a store answer says of `agent` (`now_ms`: the store's
    /// clock in that answer).
    pub(super) fn note(&self, agent: &AgentId, snapshot: &Snapshot, now_ms: u64) {
        match forced_until(snapshot) {
            Some(until_ms) => self.shared.set(
                agent,
                Due {
                    at: Instant::now() + Duration::from_millis(until_ms.saturating_sub(now_ms)),
                    generation: snapshot.generation,
                    until_ms: Some(until_ms),
                    tries: 0,
                },
            ),
            None => self.shared.cancel(agent, snapshot.generation),
        }
    }

    /// Notes a transition from the watcher.
    pub(super) fn follow(&self, transition: &Transition) {
        if transition.reason == TransitionReason::Forced {
            self.shared.set(
                &transition.agent_id,
                Due {
                    at: Instant::now(),
                    generation: transition.generation,
                    until_ms: None,
                    tries: 0,
                },
            );
        } else {
            self.shared
                .cancel(&transition.agent_id, transition.generation);
        }
    }
}

impl Drop for ForceTimers {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The expiry of a force in place, if it has one.
fn forced_until(snapshot: &Snapshot) -> Option<u64> {
    let forced = matches!(
        snapshot.state,
        CircuitState::ForcedOpen | CircuitState::ForcedClosed
    );
    snapshot.forced_until_ms.filter(|_| forced)
}

/// The task: sleeps until the earliest timer, reads the snapshots due.
async fn run(breaker: Weak<Inner>, shared: Arc<Shared>) {
    loop {
        let next = shared.due().values().map(|d| d.at).min();
        match next {
            None => {
                shared.wake.notified().await;
                continue;
            }
            Some(at) if at > Instant::now() => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = shared.wake.notified() => {}
                }
                continue;
            }
            Some(_) => {}
        }
        let now = Instant::now();
        let ready: Vec<(AgentId, Due)> = {
            let mut map = shared.due();
            let agents: Vec<AgentId> = map
                .iter()
                .filter(|(_, d)| d.at <= now)
                .map(|(agent, _)| agent.clone())
                .collect();
            agents
                .into_iter()
                .filter_map(|agent| map.remove(&agent).map(|d| (agent, d)))
                .collect()
        };
        let Some(inner) = breaker.upgrade() else {
            break;
        };
        let breaker = CircuitBreaker { inner };
        let reads = ready
            .iter()
            .map(|(agent, due)| read(&breaker, &shared, agent, *due));
        futures::future::join_all(reads).await;
    }
}

/// Reads `agent`'s snapshot, which ends its force if due; the answer is
/// observed (a force still in place sets the timer again).
async fn read(breaker: &CircuitBreaker, shared: &Shared, agent: &AgentId, due: Due) {
    let inner = &breaker.inner;
    match inner.store.snapshot(&inner.config, agent).await {
        Ok(Some(applied)) => breaker.observe(agent, &applied),
        Ok(None) => breaker.unknown_to_store(agent),
        Err(error) if due.tries + 1 < MAX_TRIES => {
            tracing::debug!(agent = %agent, %error, "reading a forced agent failed; trying again");
            shared.set(
                agent,
                Due {
                    at: Instant::now() + RETRY,
                    tries: due.tries + 1,
                    ..due
                },
            );
        }
        Err(error) => {
            tracing::warn!(agent = %agent, %error, "could not end a force on time: it ends at the next call to the agent");
        }
    }
}
