//! The breaker's background work: flushing locally counted outcomes (the
//! flusher task, and [`CircuitBreaker::flush`]), and the resync the watcher
//! runs after every (re)connection.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;

use super::{BreakerError, CircuitBreaker, Inner};
use crate::agent_id::AgentId;
use crate::cache::Cache;
use crate::model::{Batch, Transition};
use crate::store::Resync;
use crate::store::StoreError;
use crate::store::StoreExt;

impl CircuitBreaker {
    /// Sends the outcomes counted locally (successes on a clean closed
    /// circuit, local rejections) to the store now, rather than at the next
    /// flush interval. Call it before shutting a pod down: counts still held
    /// when the last handle is dropped are lost (only counters; never a
    /// failure, never a state).
    ///
    /// It tries the store even in degraded mode (the background flusher
    /// does not). The batches go concurrently (pipelined on the store's
    /// connections), so an unreachable store costs about one store timeout.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Store`] when the store fails; the counts are kept for
    /// the next try. The counts of an agent whose stored state is corrupt
    /// ([`StoreError::Corrupt`]) are dropped, not an error.
    pub async fn flush(&self) -> Result<(), BreakerError> {
        let Some(cache) = &self.inner.cache else {
            return Ok(());
        };
        let batches = cache.drain();
        let sent = self.flush_batches(cache, &batches).await;
        sent.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(())
    }

    /// Sends batches concurrently: the scripts are pipelined on the store's
    /// multiplexed connections, and an unreachable store costs one timeout
    /// for all of them, not one each. A batch that fails goes back to the
    /// cache for the next try.
    async fn flush_batches(
        &self,
        cache: &Cache,
        batches: &[(AgentId, Batch)],
    ) -> Vec<Result<(), StoreError>> {
        let sends = batches
            .iter()
            .map(|(agent, batch)| self.flush_batch(cache, agent, batch));
        futures::future::join_all(sends).await
    }

    /// Sends one batch; puts it back in the cache when the store fails.
    async fn flush_batch(
        &self,
        cache: &Cache,
        agent: &AgentId,
        batch: &Batch,
    ) -> Result<(), StoreError> {
        match self
            .inner
            .store
            .flush(&self.inner.config, agent, batch)
            .await
        {
            Ok(Some(applied)) => {
                self.inner.health.succeeded();
                self.observe(agent, &applied);
            }
            Ok(None) => {
                self.inner.health.succeeded();
                cache.forget(agent);
            }
            Err(error) if error.is_corrupt() => {
                // The agent's counters are unreadable; the repair (an admin
                // reset or force) rewrites them. The batch is dropped with
                // the entry (see `store_failed`), and the other agents'
                // flushes, and the health reports that flush first, go on.
                tracing::warn!(agent = %agent, %error, "locally counted outcomes dropped: the agent's stored state is corrupt");
                self.store_failed(&error);
            }
            Err(error) => {
                cache.restore(agent, batch);
                self.store_failed(&error);
                return Err(error);
            }
        }
        Ok(())
    }
}

/// The task that sends locally counted outcomes to the store and keeps the
/// cache entries in use fresh. Stops when the breaker is dropped.
#[derive(Debug)]
pub(super) struct Flusher {
    task: JoinHandle<()>,
}

impl Flusher {
    /// Spawns the flusher. It ticks every quarter of `max_staleness` (at most
    /// every `flush_interval`); each tick flushes the entries [`due`]
    /// (crate::cache::Cache::due): one script call per agent whose local
    /// rejections are `flush_interval` old or whose successes are
    /// `success_interval` old (`window_interval` while its window holds
    /// failures). Nothing else: entries need no refresh by
    /// age while the subscription stays up.
    pub(super) fn spawn(
        breaker: Weak<Inner>,
        max_staleness: Duration,
        flush_interval: Duration,
        success_interval: Duration,
        window_interval: Duration,
    ) -> Self {
        let tick = (max_staleness / 4).min(flush_interval).min(window_interval);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(tick);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = breaker.upgrade() else {
                    break;
                };
                let breaker = CircuitBreaker { inner };
                let Some(cache) = breaker.inner.cache.clone() else {
                    break;
                };
                if breaker.is_degraded() {
                    // The counts wait in the cache until the store is back.
                    continue;
                }
                let due = cache.due(flush_interval, success_interval, window_interval);
                let sent = breaker.flush_batches(&cache, &due).await;
                for ((agent, _), result) in due.iter().zip(sent) {
                    if let Err(error) = result {
                        tracing::debug!(agent = %agent, %error, "flush failed; counts kept for the next tick");
                    }
                }
            }
        });
        Self { task }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The task that moves the last snapshots seen (which seed the `FailLocal`
/// fallback) forward with the transitions the watcher delivers, so that a
/// circuit another pod opened is seeded open. Stops when the breaker is
/// dropped.
#[derive(Debug)]
pub(super) struct Follower {
    task: JoinHandle<()>,
}

impl Follower {
    /// Spawns the follower on the current tokio runtime.
    pub(super) fn spawn(
        breaker: Weak<Inner>,
        mut transitions: broadcast::Receiver<Transition>,
    ) -> Self {
        let task = tokio::spawn(async move {
            loop {
                match transitions.recv().await {
                    Ok(transition) => {
                        let Some(inner) = breaker.upgrade() else {
                            break;
                        };
                        inner.fallback.follow(&inner.config, &transition);
                        if let Some(timers) = &inner.force_timers {
                            timers.follow(&transition);
                        }
                    }
                    // Missed ones: store answers (the flusher's refreshes)
                    // bring the snapshots up to date.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        });
        Self { task }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the watcher runs after every (re)connection: reads every cached
/// agent's snapshot again, so the cache catches up with whatever pub/sub lost.
pub(super) fn resync(breaker: Weak<Inner>) -> Resync {
    Arc::new(move |agents: Vec<AgentId>| {
        let breaker = breaker.clone();
        Box::pin(async move {
            let Some(inner) = breaker.upgrade() else {
                return;
            };
            let breaker = CircuitBreaker { inner };
            if breaker.is_degraded() {
                // The subscription is back, so the store likely is: recover
                // now rather than at the prober's next tick. The recovery
                // rereads every agent held (these ones included).
                breaker.recover().await;
                return;
            }
            for agent in agents {
                match breaker
                    .inner
                    .store
                    .snapshot(&breaker.inner.config, &agent)
                    .await
                {
                    Ok(Some(applied)) => breaker.observe(&agent, &applied),
                    Ok(None) => breaker.unknown_to_store(&agent),
                    Err(error) => {
                        tracing::debug!(agent = %agent, %error, "resync failed; the entry will age out");
                    }
                }
            }
        }) as BoxFuture<'static, ()>
    })
}
