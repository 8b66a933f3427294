//! What the breaker learns, from store answers and from the watcher:
//! [`CircuitBreaker::subscribe`], the cache, and what every store answer
//! updates.

#[cfg(feature = "testing")]
use std::sync::Arc;

use futures::future;
use futures::stream::{self, Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::CircuitBreaker;
use crate::agent_id::AgentId;
#[cfg(feature = "testing")]
use crate::cache::Cache;
use crate::cache::CacheStats;
use crate::model::Transition;
use crate::store::Applied;

impl CircuitBreaker {
    /// Every transition of every agent from now on, as it happens.
    ///
    /// On Redis the stream is fed by this pod's watcher (pub/sub, with a
    /// replay of `PREFIX:transitions` after a reconnect): each transition is
    /// delivered once, in generation order per agent. On the embedded store it
    /// is fed by the store itself. A subscriber more than 1,024 transitions
    /// behind skips the oldest (a warning is logged).
    pub fn subscribe(&self) -> impl Stream<Item = Transition> + Send + use<> {
        let receiver = self.inner.feed.as_ref().map(|feed| feed.subscribe());
        stream::iter(receiver.map(BroadcastStream::new))
            .flatten()
            .filter_map(|item| {
                future::ready(match item {
                    Ok(transition) => Some(transition),
                    Err(BroadcastStreamRecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "a transition subscriber fell behind");
                        None
                    }
                })
            })
    }

    /// The local cache, when the store is shared through Redis (**testing**
    /// feature: tests look inside it).
    #[cfg(feature = "testing")]
    #[must_use]
    pub fn cache(&self) -> Option<&Arc<Cache>> {
        self.inner.cache.as_ref().filter(|_| self.inner.remote)
    }

    /// The local cache's hits and misses, when the store is shared through
    /// Redis (`None` on the embedded store, which needs no cache).
    #[must_use]
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.inner
            .cache
            .as_ref()
            .filter(|_| self.inner.remote)
            .map(|cache| cache.stats())
    }

    /// Whether the cache's feed (the Redis subscription) is connected
    /// (always `false` on the embedded store, which needs none).
    #[must_use]
    pub fn is_watching(&self) -> bool {
        self.inner.cache.is_some()
            && self.inner.remote
            && self
                .inner
                .feed
                .as_ref()
                .is_some_and(|feed| feed.is_connected())
    }

    /// Remembers the snapshot and logs the transition of a store answer.
    ///
    /// The snapshot is kept whatever the policy: it seeds the `FailLocal`
    /// fallback, and it is what health reports while the pod is degraded.
    pub(super) fn observe<T>(&self, agent: &AgentId, applied: &Applied<T>) {
        log_transition(applied.transition.as_ref());
        if let Some(timers) = &self.inner.force_timers {
            timers.note(agent, &applied.snapshot, applied.now_ms);
        }
        let cache = self.inner.cache.as_deref();
        if let Some(cache) = cache {
            cache.apply_snapshot(agent, &applied.snapshot, applied.now_ms);
        }
        // An answer overtaken by a transition the watcher already delivered
        // (the cache moves forward only, and is cleared when Redis restarts)
        // must not take the fallback's seed back.
        let overtaken = || {
            cache.is_some_and(|cache| {
                cache
                    .generation(agent)
                    .is_some_and(|newer| newer > applied.snapshot.generation)
            })
        };
        self.inner
            .fallback
            .remember(agent, &applied.snapshot, overtaken);
    }
}

pub(super) fn log_transition(transition: Option<&Transition>) {
    if let Some(t) = transition {
        tracing::info!(
            agent = %t.agent_id,
            from = %t.from,
            to = %t.to,
            reason = %t.reason,
            generation = t.generation,
            backoff_seconds = t.backoff_seconds,
            "circuit transition"
        );
    }
}
