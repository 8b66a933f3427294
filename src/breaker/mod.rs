//! [`CircuitBreaker`]: the async handle the rest of the world uses.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::agent_id::AgentId;
use crate::config::{BreakerConfig, ConfigError};
use crate::model::{Decision, ForceMode, Outcome, Snapshot, Ticket, Transition};
use crate::store::{Applied, BreakerStore, MemoryStore, StoreError};

mod error;
mod metrics;
mod permit;
mod policy;

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
/// - [`acquire`](Self::acquire) asks the store for a permit: one atomic
///   operation (one script call on Redis). A rejection is a value,
///   [`Rejected`], never an error string.
/// - The [`Permit`] settles the call: `success()`, `failure(reason)` or
///   `neutral()`. A permit dropped unsettled (the task was cancelled) counts
///   as neutral: a probe permit is handed back, nothing is counted.
/// - When the store fails, acquire follows the [`StorePolicy`] (default
///   `FailLocal`), so the breaker never becomes the outage. Read and admin
///   operations return the error.
/// - Every transition is logged with `tracing` at INFO.
/// - Clones share everything; the handle is cheap to clone.
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
}

/// Builder of a [`CircuitBreaker`]; see [`CircuitBreaker::builder`].
#[derive(Debug)]
#[must_use]
pub struct CircuitBreakerBuilder {
    store: Option<Arc<dyn BreakerStore>>,
    config: BreakerConfig,
    policy: StorePolicy,
    instance_id: Option<String>,
}

impl CircuitBreakerBuilder {
    /// The store (default: a new [`MemoryStore`]).
    pub fn store(mut self, store: impl BreakerStore + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// A store already shared behind an `Arc`.
    pub fn shared_store(mut self, store: Arc<dyn BreakerStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The breaker's tunables (default: [`BreakerConfig::default`]).
    pub fn config(mut self, config: BreakerConfig) -> Self {
        self.config = config;
        self
    }

    /// What to do when the store fails (default: `FailLocal`).
    pub fn policy(mut self, policy: StorePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The id of this pod in logs and failure records (default: a random UUID).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// Validates the config and builds the breaker.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the config is invalid.
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        self.config.validate()?;
        Ok(CircuitBreaker {
            inner: Arc::new(Inner {
                store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                config: self.config,
                policy: self.policy,
                instance_id: self
                    .instance_id
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                fallback: MemoryStore::new(),
                last_seen: Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl CircuitBreaker {
    /// A builder: store, config, policy.
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder {
            store: None,
            config: BreakerConfig::default(),
            policy: StorePolicy::default(),
            instance_id: None,
        }
    }

    /// A breaker on a new embedded [`MemoryStore`] with the default config.
    #[must_use]
    pub fn in_memory() -> Self {
        Self::with_parts(Arc::new(MemoryStore::new()), BreakerConfig::default())
    }

    fn with_parts(store: Arc<dyn BreakerStore>, config: BreakerConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                policy: StorePolicy::default(),
                instance_id: uuid::Uuid::new_v4().to_string(),
                fallback: MemoryStore::new(),
                last_seen: Mutex::new(HashMap::new()),
            }),
        }
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
        let permit_id = uuid::Uuid::new_v4().simple().to_string();
        let store = &self.inner.store;
        match store.acquire(&self.inner.config, agent, &permit_id).await {
            Ok(applied) => {
                self.observe(agent, &applied);
                self.permit_or_reject(agent, permit_id, applied.value, Origin::Store)
            }
            Err(error) => self.acquire_degraded(agent, permit_id, &error).await,
        }
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
