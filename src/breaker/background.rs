//! The breaker's background work: the flusher, and the resync the watcher
//! runs after every (re)connection.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use super::{CircuitBreaker, Inner};
use crate::agent_id::AgentId;
use crate::watch::Resync;

/// The task that sends locally counted outcomes to the store and keeps the
/// cache entries in use fresh. Stops when the breaker is dropped.
#[derive(Debug)]
pub(super) struct Flusher {
    task: JoinHandle<()>,
}

impl Flusher {
    /// Spawns the flusher. It ticks every quarter of `max_staleness` (at most
    /// every `flush_interval`); each tick flushes the entries [`due`]
    /// (crate::cache::Cache::due): one script call per agent in use, which
    /// also refreshes the entry.
    pub(super) fn spawn(
        breaker: Weak<Inner>,
        max_staleness: Duration,
        flush_interval: Duration,
    ) -> Self {
        let tick = (max_staleness / 4).min(flush_interval);
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
                for (agent, batch) in cache.due(tick, flush_interval) {
                    if let Err(error) = breaker.flush_batch(&cache, &agent, &batch).await {
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
            for agent in agents {
                match breaker
                    .inner
                    .store
                    .snapshot(&breaker.inner.config, &agent)
                    .await
                {
                    Ok(Some(applied)) => breaker.observe(&agent, &applied),
                    Ok(None) => {
                        if let Some(cache) = &breaker.inner.cache {
                            cache.forget(&agent);
                        }
                    }
                    Err(error) => {
                        tracing::debug!(agent = %agent, %error, "resync failed; the entry will age out");
                    }
                }
            }
        }) as BoxFuture<'static, ()>
    })
}
