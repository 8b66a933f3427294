//! The [`MemoryStore`](super::MemoryStore)'s own timer: a force with a TTL
//! ends on time, with its one transition, even if no operation touches the
//! agent (issue 11.5).
//!
//! ## Behavior
//!
//! - Every operation that leaves an agent forced with an expiry notes the
//!   expiry here (a map lookup, only for forced agents). One tokio task per
//!   store sleeps until the earliest expiry noted, then applies the lazy
//!   refresh ([`crate::model::refresh`]) to the agents due: the force ends
//!   and its transition is published, exactly as if an operation had come.
//! - The task is spawned on the first expiry noted inside a tokio runtime;
//!   outside one there is no timer and forces end lazily, at the next
//!   operation. It sleeps on tokio time (so `time::pause()` drives it) and
//!   judges expiry by the store's clock; a clock that does not move with
//!   tokio time (a `ManualClock`) only delays the refresh, never makes it
//!   early. It ends with the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::agent_id::AgentId;
use crate::config::BreakerConfig;
use crate::task::LazyTask;

/// The expiries noted, and the task that acts on them.
#[derive(Debug, Default)]
pub(super) struct Expiries {
    /// Agent -> the store-clock ms at which its force ends, and the config
    /// of the operation that set it (the refresh closes with it).
    due: Mutex<HashMap<AgentId, (u64, BreakerConfig)>>,
    /// Wakes the task when an earlier expiry is noted (shared with the
    /// task, which holds the store only weakly while it waits).
    wake: Arc<Notify>,
    task: LazyTask,
}

impl Expiries {
    fn due(&self) -> MutexGuard<'_, HashMap<AgentId, (u64, BreakerConfig)>> {
        self.due.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The notification the task waits on, for [`spawn`].
    pub(super) fn wake(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Notes that `agent`'s force ends at `until_ms`; `spawn` starts the
    /// task if none runs yet.
    pub(super) fn note(
        &self,
        agent: &AgentId,
        until_ms: u64,
        config: &BreakerConfig,
        spawn: impl FnOnce() -> Option<JoinHandle<()>>,
    ) {
        let earlier = {
            let mut due = self.due();
            if due.get(agent).is_some_and(|(known, _)| *known == until_ms) {
                // Already noted: an operation on a forced agent costs no more.
                false
            } else {
                let earliest = due.values().map(|(until, _)| *until).min();
                due.insert(agent.clone(), (until_ms, *config));
                earliest.is_none_or(|e| until_ms < e)
            }
        };
        if self.task.ensure(spawn) && earlier {
            self.wake.notify_one();
        }
    }

    /// The agents whose expiry is at or before `now_ms`, taken out; else
    /// the earliest expiry still to come.
    fn take_due(&self, now_ms: u64) -> Result<Vec<(AgentId, BreakerConfig)>, Option<u64>> {
        let mut due = self.due();
        let ready: Vec<AgentId> = due
            .iter()
            .filter(|(_, (until, _))| *until <= now_ms)
            .map(|(agent, _)| agent.clone())
            .collect();
        if ready.is_empty() {
            return Err(due.values().map(|(until, _)| *until).min());
        }
        Ok(ready
            .into_iter()
            .filter_map(|agent| due.remove(&agent).map(|(_, config)| (agent, config)))
            .collect())
    }
}

/// What the task needs of the store, without keeping it alive.
pub(super) trait Expire: Send + Sync + 'static {
    /// The store's clock.
    fn now_ms(&self) -> u64;
    /// The store's expiries.
    fn expiries(&self) -> &Expiries;
    /// Applies the lazy refresh to `agent` (publishing its transition).
    fn expire(&self, agent: &AgentId, config: &BreakerConfig);
}

/// Spawns the task on the current runtime; `None` outside one.
pub(super) fn spawn<S: Expire>(store: Weak<S>, wake: Arc<Notify>) -> Option<JoinHandle<()>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    Some(runtime.spawn(async move {
        loop {
            // The store is held only between waits: dropping it aborts
            // this task (a `LazyTask`, aborted with `Expiries`).
            let wait = {
                let Some(store) = store.upgrade() else {
                    break;
                };
                match store.expiries().take_due(store.now_ms()) {
                    Ok(agents) => {
                        for (agent, config) in &agents {
                            store.expire(agent, config);
                        }
                        continue;
                    }
                    Err(next) => next.map(|until| until.saturating_sub(store.now_ms())),
                }
            };
            match wait {
                Some(ms) => {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(ms.max(1))) => {}
                        () = wake.notified() => {}
                    }
                }
                None => wake.notified().await,
            }
        }
    }))
}
