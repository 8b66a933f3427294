//! What the breaker learns, from store answers and from the watcher:
//! [`CircuitBreaker::subscribe`], the cache, and what every store answer
//! updates.

use std::sync::Arc;

use futures::future;
use futures::stream::{self, Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::CircuitBreaker;
use crate::agent_id::AgentId;
use crate::cache::Cache;
use crate::model::Transition;
use crate::store::Applied;
use crate::watch::Watcher;

impl CircuitBreaker {
    /// Every transition of every agent from now on, as it happens.
    ///
    /// On Redis the stream is fed by this pod's watcher (pub/sub, with a
    /// replay of `PREFIX:transitions` after a reconnect): each transition is
    /// delivered once, in generation order per agent. On the embedded store it
    /// is fed by the store itself. A subscriber more than 1,024 transitions
    /// behind skips the oldest (a warning is logged).
    pub fn subscribe(&self) -> impl Stream<Item = Transition> + Send + use<> {
        let receiver = match &self.inner.watcher {
            Some(watcher) => Some(watcher.subscribe()),
            None => self.inner.store.local_transitions(),
        };
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

    /// The local cache, when the store is shared through Redis.
    #[must_use]
    pub fn cache(&self) -> Option<&Arc<Cache>> {
        self.inner.cache.as_ref()
    }

    /// Whether the watcher's subscription is connected (always `false` on
    /// the embedded store, which needs none).
    #[must_use]
    pub fn is_watching(&self) -> bool {
        self.inner
            .watcher
            .as_ref()
            .is_some_and(Watcher::is_connected)
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
