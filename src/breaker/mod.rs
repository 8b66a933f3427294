//! [`CircuitBreaker`]: the async handle the rest of the world uses.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future;
use futures::stream::{self, Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::agent_id::AgentId;
use crate::cache::{Cache, Local};
use crate::config::BreakerConfig;
use crate::model::{Batch, Decision, ForceMode, Outcome, Snapshot, Ticket, Transition};
use crate::store::{Applied, BreakerStore, MemoryStore, StoreError};
use crate::watch::Watcher;

mod background;
mod builder;
mod error;
mod metrics;
mod permit;
mod policy;

pub use builder::{CircuitBreakerBuilder, DEFAULT_FLUSH_INTERVAL, DEFAULT_MAX_STALENESS};
pub use error::{BreakerError, CallError, RejectCause, Rejected};
pub use metrics::{AgentMetrics, Counters, iso8601};
pub use permit::Permit;
pub use policy::StorePolicy;

use permit::Origin;

/// A circuit breaker over many agents, whose state lives in a
/// [`BreakerStore`]: Redis for a fleet, memory for one process.
///
/// ```
/// use fleet_breaker::{AgentId, CircuitBreaker, CallError};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let breaker = CircuitBreaker::in_memory();
/// let agent = AgentId::new("agent-1").unwrap();
/// let answer = breaker.call(&agent, async { Ok::<_, std::io::Error>(42) }).await;
/// assert_eq!(answer.unwrap(), 42);
/// # }
/// ```
///
/// ## Behavior
///
/// - [`acquire`](Self::acquire) decides from the local [`Cache`] where it
///   can (a store shared through Redis, with the watcher's subscription up):
///   a circuit cached closed is admitted and one cached open is rejected with
///   no round trip. Anything else (half-open, an unknown, stale or untrusted
///   entry) is one atomic store operation (one script call on Redis). A
///   rejection is a value, [`Rejected`], never an error string.
/// - The [`Permit`] settles the call: `success()`, `failure(reason)` or
///   `neutral()`. A failure always reaches the store. A success reaches it
///   unless the circuit is known closed and clean fleet-wide (failure count
///   zero), in which case it is counted locally and flushed in a batch within
///   `flush_interval` (default 1 s), with the local rejections: `metrics()`
///   counters may lag by that much. A permit dropped unsettled (the task was
///   cancelled) counts as neutral: a probe permit is handed back, nothing is
///   counted.
/// - When the store fails, acquire follows the [`StorePolicy`] (default
///   `FailLocal`), so the breaker never becomes the outage. Read and admin
///   operations return the error.
/// - Every transition is logged with `tracing` at INFO, and delivered to
///   [`subscribe`](Self::subscribe) streams.
/// - Clones share everything; the handle is cheap to clone. The watcher and
///   flusher tasks stop when the last clone is dropped; call
///   [`flush`](Self::flush) first to send the counts still held locally.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn BreakerStore>,
    config: BreakerConfig,
    policy: StorePolicy,
    instance_id: String,
    /// The local breaker `FailLocal` falls back to.
    fallback: MemoryStore,
    /// The last snapshot seen of each agent, to seed the fallback.
    last_seen: Mutex<HashMap<AgentId, Snapshot>>,
    /// The local cache, for a store shared through Redis.
    cache: Option<Arc<Cache>>,
    /// Feeds the cache; also the source of `subscribe()`.
    watcher: Option<Watcher>,
    /// Sends locally counted outcomes to the store and keeps entries fresh;
    /// held only so that it stops with the breaker.
    _flusher: Option<background::Flusher>,
    /// Permit ids are this pod's prefix and a counter: unique fleet-wide
    /// without a random draw per call.
    permit_prefix: String,
    permit_counter: AtomicU64,
}

impl CircuitBreaker {
    /// A builder: store, config, policy, cache settings.
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new()
    }

    /// A breaker on a new embedded [`MemoryStore`] with the default config.
    #[must_use]
    pub fn in_memory() -> Self {
        Self::builder().build_valid()
    }

    /// The breaker's tunables.
    #[must_use]
    pub fn config(&self) -> &BreakerConfig {
        &self.inner.config
    }

    /// The store the breaker decides with.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn BreakerStore> {
        &self.inner.store
    }

    /// The policy followed when the store fails.
    #[must_use]
    pub fn policy(&self) -> StorePolicy {
        self.inner.policy
    }

    /// This pod's id.
    #[must_use]
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// Asks for a permit to call `agent`.
    ///
    /// # Errors
    ///
    /// [`Rejected`] when the circuit refuses the call (or, under
    /// `FailClosed`, when the store cannot be reached).
    pub async fn acquire(&self, agent: &AgentId) -> Result<Permit, Rejected> {
        if let Some(cache) = &self.inner.cache {
            match cache.decide(agent) {
                Local::Admit { generation } => {
                    let ticket = Ticket {
                        permit_id: String::new(),
                        generation,
                    };
                    return Ok(Permit::new(
                        self.clone(),
                        agent.clone(),
                        ticket,
                        false,
                        Origin::Store,
                    ));
                }
                Local::Reject {
                    state,
                    retry_after_ms,
                } => {
                    return Err(Rejected {
                        agent: agent.clone(),
                        state,
                        retry_after: retry_after_ms.map(Duration::from_millis),
                        cause: RejectCause::Circuit,
                    });
                }
                Local::Ask => {}
            }
        }
        let permit_id = self.next_permit_id();
        let store = &self.inner.store;
        match store.acquire(&self.inner.config, agent, &permit_id).await {
            Ok(applied) => {
                self.observe(agent, &applied);
                self.permit_or_reject(agent, permit_id, applied.value, Origin::Store)
            }
            Err(error) => self.acquire_degraded(agent, permit_id, &error).await,
        }
    }

    fn next_permit_id(&self) -> String {
        let n = self.inner.permit_counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:x}", self.inner.permit_prefix)
    }

    #[allow(clippy::unused_async)] // symmetric with `acquire`; the fallback is sync today
    async fn acquire_degraded(
        &self,
        agent: &AgentId,
        permit_id: String,
        error: &StoreError,
    ) -> Result<Permit, Rejected> {
        tracing::warn!(agent = %agent, %error, policy = ?self.inner.policy, "breaker store failed on acquire");
        match self.inner.policy {
            StorePolicy::FailOpen => Ok(Permit::new(
                self.clone(),
                agent.clone(),
                Ticket {
                    permit_id,
                    generation: 0,
                },
                false,
                Origin::Unrecorded,
            )),
            StorePolicy::FailClosed => Err(Rejected {
                agent: agent.clone(),
                state: crate::model::CircuitState::Open,
                retry_after: None,
                cause: RejectCause::StoreUnavailable,
            }),
            StorePolicy::FailLocal => {
                let fallback = &self.inner.fallback;
                if !fallback.contains(agent) {
                    let seed = self.last_seen(agent);
                    fallback.seed(
                        agent,
                        seed.unwrap_or_else(|| Snapshot::fresh(&self.inner.config)),
                    );
                }
                let applied = fallback.acquire_sync(&self.inner.config, agent, &permit_id);
                log_transition(applied.transition.as_ref());
                self.permit_or_reject(agent, permit_id, applied.value, Origin::Local)
            }
        }
    }

    fn permit_or_reject(
        &self,
        agent: &AgentId,
        permit_id: String,
        decision: Decision,
        origin: Origin,
    ) -> Result<Permit, Rejected> {
        match decision {
            Decision::Granted(grant) => Ok(Permit::new(
                self.clone(),
                agent.clone(),
                Ticket {
                    permit_id,
                    generation: grant.generation,
                },
                grant.probe,
                origin,
            )),
            Decision::Rejected {
                state,
                retry_after_ms,
            } => Err(Rejected {
                agent: agent.clone(),
                state,
                retry_after: retry_after_ms.map(Duration::from_millis),
                cause: RejectCause::Circuit,
            }),
        }
    }

    /// Records an outcome for a permit; store errors fall back per policy.
    pub(crate) async fn settle(
        &self,
        agent: &AgentId,
        ticket: &Ticket,
        outcome: Outcome,
        origin: Origin,
    ) {
        let config = &self.inner.config;
        match origin {
            Origin::Unrecorded => {}
            Origin::Local => {
                let applied = self
                    .inner
                    .fallback
                    .record_sync(config, agent, ticket, outcome);
                log_transition(applied.transition.as_ref());
            }
            Origin::Store if outcome == Outcome::Success && self.count_locally(agent, ticket) => {}
            Origin::Store => match self
                .inner
                .store
                .record(config, agent, ticket, outcome)
                .await
            {
                Ok(applied) => self.observe(agent, &applied),
                Err(error) => {
                    tracing::warn!(agent = %agent, %error, outcome = outcome.as_str(), "breaker store failed to record an outcome");
                }
            },
        }
    }

    /// Counts a success in the cache when the circuit is known closed and
    /// clean fleet-wide; the flusher sends it on.
    fn count_locally(&self, agent: &AgentId, ticket: &Ticket) -> bool {
        ticket.permit_id.is_empty()
            && self
                .inner
                .cache
                .as_ref()
                .is_some_and(|cache| cache.count_success(agent, ticket.generation))
    }

    /// Runs `call` under a permit: success on `Ok`, failure on `Err`.
    ///
    /// A cancelled call (the returned future dropped) counts as neutral.
    ///
    /// # Errors
    ///
    /// [`CallError::Rejected`] when the breaker refused (the future was not
    /// polled), [`CallError::Inner`] with the call's own error otherwise.
    pub async fn call<T, E, F>(&self, agent: &AgentId, call: F) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let permit = self.acquire(agent).await.map_err(CallError::Rejected)?;
        match call.await {
            Ok(value) => {
                permit.success().await;
                Ok(value)
            }
            Err(error) => {
                permit.failure(error.to_string()).await;
                Err(CallError::Inner(error))
            }
        }
    }

    /// The agent's state and counters, in the original JSON shape.
    ///
    /// # Errors
    ///
    /// [`BreakerError::UnknownAgent`] for an agent the store has never seen;
    /// [`BreakerError::Store`] when the store fails.
    pub async fn metrics(&self, agent: &AgentId) -> Result<AgentMetrics, BreakerError> {
        let applied = self
            .inner
            .store
            .snapshot(&self.inner.config, agent)
            .await?
            .ok_or_else(|| BreakerError::UnknownAgent(agent.clone()))?;
        self.observe(agent, &applied);
        Ok(AgentMetrics::from_snapshot(
            agent,
            &applied.snapshot,
            applied.now_ms,
        ))
    }

    /// The agent's raw snapshot (after lazy expiry).
    ///
    /// # Errors
    ///
    /// As [`metrics`](Self::metrics).
    pub async fn snapshot(&self, agent: &AgentId) -> Result<Snapshot, BreakerError> {
        let applied = self
            .inner
            .store
            .snapshot(&self.inner.config, agent)
            .await?
            .ok_or_else(|| BreakerError::UnknownAgent(agent.clone()))?;
        self.observe(agent, &applied);
        Ok(applied.snapshot)
    }

    /// The admin reset, fleet-wide: closed, counters zero, backoff base.
    ///
    /// # Errors
    ///
    /// [`BreakerError::UnknownAgent`] for an agent the store has never seen
    /// (nothing is created); [`BreakerError::Store`] when the store fails.
    pub async fn reset(&self, agent: &AgentId) -> Result<Transition, BreakerError> {
        let applied = self.inner.store.reset(&self.inner.config, agent).await?;
        self.admin_result(agent, applied)
    }

    /// The operator override: `Open`, `Closed` for `ttl` (or until changed),
    /// or `Auto` to end a force.
    ///
    /// # Errors
    ///
    /// [`BreakerError::InvalidInput`] for a zero `ttl`;
    /// [`BreakerError::UnknownAgent`] and [`BreakerError::Store`] as
    /// [`reset`](Self::reset).
    pub async fn force(
        &self,
        agent: &AgentId,
        mode: ForceMode,
        ttl: Option<Duration>,
    ) -> Result<Transition, BreakerError> {
        if ttl.is_some_and(|ttl| ttl < Duration::from_millis(1)) {
            return Err(BreakerError::InvalidInput(
                "a force ttl must be at least 1 ms; omit it to force until changed".into(),
            ));
        }
        let applied = self
            .inner
            .store
            .force(&self.inner.config, agent, mode, ttl)
            .await?;
        self.admin_result(agent, applied)
    }

    /// Every agent the store knows, sorted.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Store`] when the store fails.
    pub async fn agents(&self) -> Result<Vec<AgentId>, BreakerError> {
        Ok(self.inner.store.agents().await?)
    }

    /// Every transition of every agent from now on, as it happens.
    ///
    /// On Redis the stream is fed by this pod's watcher (pub/sub, with a
    /// replay of `PREFIX:transitions` after a reconnect): each transition is
    /// delivered once, in generation order per agent. On the embedded store it
    /// is fed by the store itself. A subscriber more than 1,024 transitions
    /// behind skips the oldest (a warning is logged).
    pub fn subscribe(&self) -> impl Stream<Item = Transition> + Send + 'static {
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

    /// Sends the outcomes counted locally (successes on a clean closed
    /// circuit, local rejections) to the store now, rather than at the next
    /// flush interval. Call it before shutting a pod down: counts still held
    /// when the last handle is dropped are lost (only counters; never a
    /// failure, never a state).
    ///
    /// # Errors
    ///
    /// [`BreakerError::Store`] when the store fails; the counts are kept for
    /// the next try.
    pub async fn flush(&self) -> Result<(), BreakerError> {
        let Some(cache) = &self.inner.cache else {
            return Ok(());
        };
        let mut result = Ok(());
        for (agent, batch) in cache.drain() {
            if let Err(error) = self.flush_batch(cache, &agent, &batch).await {
                result = Err(error.into());
            }
        }
        result
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
            Ok(Some(applied)) => self.observe(agent, &applied),
            Ok(None) => cache.forget(agent),
            Err(error) => {
                cache.restore(agent, batch);
                return Err(error);
            }
        }
        Ok(())
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

    fn admin_result(
        &self,
        agent: &AgentId,
        applied: Option<Applied<()>>,
    ) -> Result<Transition, BreakerError> {
        let applied = applied.ok_or_else(|| BreakerError::UnknownAgent(agent.clone()))?;
        self.observe(agent, &applied);
        // The local fallback follows admin actions too.
        self.inner.fallback.seed(agent, applied.snapshot.clone());
        applied.transition.ok_or_else(|| {
            BreakerError::Store(StoreError::InvalidData {
                what: format!("admin action on {agent}"),
                detail: "the store reported no transition".into(),
            })
        })
    }

    /// Remembers the snapshot and logs the transition of a store answer.
    fn observe<T>(&self, agent: &AgentId, applied: &Applied<T>) {
        log_transition(applied.transition.as_ref());
        if let Some(cache) = &self.inner.cache {
            cache.apply_snapshot(agent, &applied.snapshot, applied.now_ms);
        }
        if self.inner.policy == StorePolicy::FailLocal {
            self.inner
                .last_seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(agent.clone(), applied.snapshot.clone());
        }
    }

    fn last_seen(&self, agent: &AgentId) -> Option<Snapshot> {
        self.inner
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(agent)
            .cloned()
    }
}

fn log_transition(transition: Option<&Transition>) {
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
