//! [`CircuitBreaker`]: the async handle the rest of the world uses.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::agent_id::AgentId;
use crate::cache::{Cache, Cached, EntryRef};
use crate::clock::Clock;
use crate::config::BreakerConfig;
use crate::model::{CircuitState, Decision, Outcome, Report, Ticket, TransitionReason};
use crate::store::BreakerStore;
use crate::store::FeedHandle;
use crate::store::StoreExt;

mod admin;
mod agreement;
mod background;
mod builder;
mod degraded;
mod error;
mod expiry;
mod fallback;
mod handle;
mod local;
mod metrics;
mod observe;
mod pending;
mod permit;
mod policy;
mod quick;
mod store_health;
mod sweep;

pub use crate::cache::CacheStats;
pub use crate::clock::iso8601;
pub use agreement::{ConfigAgreement, config_fingerprint};
pub use builder::{
    CircuitBreakerBuilder, DEFAULT_FLUSH_INTERVAL, DEFAULT_MAX_STALENESS,
    DEFAULT_SUCCESS_FLUSH_INTERVAL, DEFAULT_WINDOW_FLUSH_INTERVAL,
};
pub use error::{BreakerError, CallError, RejectCause, Rejected};
pub use handle::{AgentHandle, AgentPermit};
pub use metrics::{AgentMetrics, BucketView, Counters, WindowView};
pub use permit::Permit;
pub use policy::StorePolicy;
pub use store_health::{
    DEFAULT_DEGRADE_AFTER, DEFAULT_STORE_PROBE_INTERVAL, StoreStats, StoreStatus,
};

use fallback::Fallback;
use observe::log_transition;
use permit::Origin;
use store_health::{Prober, StoreHealth};

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
///   can (a store shared through Redis, with the watcher's subscription up;
///   or the embedded store, which feeds the cache as it applies each
///   operation): a circuit cached closed is admitted and one cached open is
///   rejected with no round trip and no lock. [`agent`](Self::agent) gives a
///   handle that skips the lookup too. Anything else (half-open, an unknown, stale or untrusted
///   entry) is one atomic store operation (one script call on Redis). A
///   rejection is a value, [`Rejected`], never an error string.
/// - The [`Permit`] settles the call: `success()`, `failure(reason)` or
///   `neutral()`. A failure always reaches the store. A success reaches it
///   unless the circuit is known closed and clean fleet-wide (failure count
///   zero), in which case it is counted locally. On Redis those successes
///   are flushed in a batch within `success_flush_interval` (default 10 s),
///   the local rejections within `flush_interval` (default 1 s):
///   `metrics()` counters may lag by that much. The embedded store takes
///   an agent's local counts before every operation on it, reads included,
///   so its counters never lag. A permit dropped unsettled (the task was
///   cancelled) counts as neutral: a probe permit is handed back, nothing is
///   counted.
/// - When the store fails, acquire follows the [`StorePolicy`] (default
///   `FailLocal`), so the breaker never becomes the outage. Read and admin
///   operations return the error.
/// - Degraded mode (a breaker around the store): after `degrade_after`
///   (default 3) consecutive store-unavailable errors (timeouts, lost
///   connections) on acquires, records and flushes, the pod stops calling
///   the store for decisions: `acquire` and the permits' outcomes follow the
///   policy at once (no timeout paid per call), the flusher keeps its counts,
///   and a background task pings the store every `store_probe_interval`
///   (default 200 ms). On the first answer the pod rereads the snapshot of
///   every agent it holds, forgets the local fallback's decisions (outcomes
///   decided locally during the outage are not replayed to the store: the
///   store is the truth again), and leaves degraded mode. Entering is logged
///   at WARN, leaving at INFO with the outage's length; both are counted in
///   [`store_stats`](Self::store_stats) and shown by
///   [`store_status`](Self::store_status). Read and admin operations still
///   try the store while degraded. One store answer ends a run of errors;
///   other errors (bad data in one agent's hash, a refused command) are
///   answers too: they do not count, and that call alone follows the policy.
/// - A probe outcome that could not reach the store (unavailable, or the pod
///   degraded) is kept and written as soon as the store answers: else its
///   lease would hold a half-open probe slot until `recovery_timeout`. The
///   store applies it at most once (it takes a probe outcome only while
///   that permit's lease is held). Other outcomes are not kept: a closed
///   circuit's outcome has no such key, and a retry whose first write did
///   land would count twice. See [`store_stats`](Self::store_stats).
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
    /// Agents whose policy differs from `policy`.
    agent_policies: HashMap<AgentId, StorePolicy>,
    instance_id: String,
    /// The local breaker `FailLocal` falls back to, and the last snapshot
    /// seen of each agent, to seed it.
    fallback: Fallback,
    /// The breaker around the store: errors in a row, degraded mode.
    health: Arc<StoreHealth>,
    /// Pings the store while degraded; spawned on first entering it.
    prober: Mutex<Option<Prober>>,
    /// Probe outcomes the store could not take, written when it answers.
    pending: pending::PendingProbes,
    /// The clock of the store's operations where it is this process's (an
    /// injected one, or the system's): outage times, failure records.
    clock: Arc<dyn Clock>,
    /// The local cache: fed by pub/sub in front of Redis, by the store
    /// itself in front of the embedded one.
    cache: Option<Arc<Cache>>,
    /// Whether the store is across the network (its feed is remote).
    remote: bool,
    /// Feeds the cache; also the source of `subscribe()`.
    feed: Option<FeedHandle>,
    /// Sends locally counted outcomes to the store and keeps entries fresh;
    /// held only so that it stops with the breaker.
    _flusher: Option<background::Flusher>,
    /// Moves the fallback's seeds forward with the watcher's transitions;
    /// held only so that it stops with the breaker.
    _follower: Option<background::Follower>,
    /// Asks the store to forget idle agents now and then; held only so that
    /// it stops with the breaker.
    _sweeper: Option<sweep::Sweeper>,
    /// The fleet's config fingerprints as last compared.
    agreement: agreement::Agreement,
    /// Publishes and compares them every minute (a shared store); held
    /// only so that it stops with the breaker.
    _agreement_check: Option<agreement::Checker>,
    /// Ends forces with a TTL on time (a store shared through Redis; the
    /// embedded store has its own timer).
    force_timers: Option<expiry::ForceTimers>,
    /// Permit ids are this pod's prefix and a counter: unique fleet-wide
    /// without a random draw per call.
    permit_prefix: String,
    permit_counter: AtomicU64,
    /// This pod's id in the window's reporters (the quorum).
    reporter: String,
    /// Agents this pod opened for itself (a trip below the quorum), and
    /// the settings seen of agents that have some.
    local: local::LocalOpens,
}

/// What a permit's settling reports besides the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facts {
    pub(crate) outcome: Outcome,
    pub(crate) slow: bool,
    pub(crate) retry_after_ms: Option<u64>,
}

impl Facts {
    pub(crate) fn of(outcome: Outcome) -> Self {
        Self {
            outcome,
            slow: false,
            retry_after_ms: None,
        }
    }
}

impl CircuitBreaker {
    /// A builder: store, config, policy, cache settings.
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new()
    }

    /// A breaker on a new embedded [`MemoryStore`](crate::MemoryStore) with the default config.
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

    /// The policy followed when the store fails (for agents without one of
    /// their own: see [`policy_for`](Self::policy_for)).
    #[must_use]
    pub fn policy(&self) -> StorePolicy {
        self.inner.policy
    }

    /// The policy followed for `agent` when the store fails: its own, set
    /// with [`CircuitBreakerBuilder::agent_policy`], else the breaker's.
    #[must_use]
    pub fn policy_for(&self, agent: &AgentId) -> StorePolicy {
        self.inner
            .agent_policies
            .get(agent)
            .copied()
            .unwrap_or(self.inner.policy)
    }

    /// The clock the breaker reads where it needs the time of day (failure
    /// records, outages): the store's, when it was given one (a test clock),
    /// else the system's.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
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
    #[inline]
    pub fn acquire<'a>(
        &'a self,
        agent: &'a AgentId,
    ) -> impl Future<Output = Result<Permit, Rejected>> + Send + 'a {
        quick::decide(move || {
            self.try_acquire(agent)
                .ok_or_else(|| -> quick::Boxed<'_, _> { Box::pin(self.acquire_from_store(agent)) })
        })
    }

    /// [`acquire`](Self::acquire) without waiting: the decision where the
    /// pod makes it alone, `None` where only the store can (then call
    /// `acquire`, which asks it).
    ///
    /// The pod decides alone on a circuit its cache trusts closed or open,
    /// and on an agent it opened for itself; a half-open circuit, an agent
    /// not yet cached, a subscription not trusted, a degraded pod or a
    /// breaker without a cache leave the decision to the store. With
    /// [`Permit::try_success`], a call on a closed circuit runs with no
    /// `.await` and no allocation:
    ///
    /// ```
    /// use fleet_breaker::{AgentId, CircuitBreaker};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let breaker = CircuitBreaker::in_memory();
    /// let agent = AgentId::new("agent-1").unwrap();
    /// let permit = match breaker.try_acquire(&agent) {
    ///     Some(decided) => decided,
    ///     None => breaker.acquire(&agent).await,
    /// }
    /// .expect("closed");
    /// // ... the call succeeded:
    /// if let Err(permit) = permit.try_success() {
    ///     permit.success().await; // the store must hear of it
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// `Some(Err(`[`Rejected`]`))` when the pod's cache or its own open
    /// refuses the call.
    #[must_use = "a decision should be used: None means the store must decide"]
    #[inline]
    pub fn try_acquire(&self, agent: &AgentId) -> Option<Result<Permit, Rejected>> {
        if let Some(rejected) = self.local_open(agent) {
            return Some(Err(rejected));
        }
        let cache = self.inner.cache.as_ref().filter(|_| !self.is_degraded())?;
        match cache.decide(agent) {
            Cached::Admit { generation, entry } => {
                Some(Ok(Permit::cached(self.clone(), generation, entry)))
            }
            Cached::Reject {
                state,
                retry_after_ms,
            } => Some(Err(Rejected::by_circuit(agent, state, retry_after_ms))),
            Cached::Ask => None,
        }
    }

    /// `acquire` past the cache: the store's decision, or the policy's when
    /// the store fails or the pod is degraded.
    pub(crate) async fn acquire_from_store(&self, agent: &AgentId) -> Result<Permit, Rejected> {
        if self.is_degraded() {
            // The cache is skipped too: outcomes cannot reach the store, so
            // the policy decides (and, under `FailLocal`, records) alone.
            return self.decide_by_policy(agent, self.next_permit_id());
        }
        let permit_id = self.next_permit_id();
        let store = &self.inner.store;
        match store.acquire(&self.inner.config, agent, &permit_id).await {
            Ok(applied) => {
                self.inner.health.succeeded();
                self.observe(agent, &applied);
                self.permit_or_reject(agent, permit_id, applied.value, Origin::Store)
            }
            Err(error) => {
                tracing::warn!(agent = %agent, %error, policy = ?self.policy_for(agent), "breaker store failed on acquire");
                self.store_failed(&error);
                self.decide_by_policy(agent, permit_id)
            }
        }
    }

    /// The rejection of a call to an agent this pod opened for itself.
    #[inline]
    fn local_open(&self, agent: &AgentId) -> Option<Rejected> {
        let (until, now) = self
            .inner
            .local
            .until(agent, || self.inner.clock.now_ms())?;
        Some(Rejected {
            agent: agent.clone(),
            state: CircuitState::Open,
            retry_after: Some(Duration::from_millis(until - now)),
            cause: RejectCause::LocalQuorum,
        })
    }

    /// Agents this pod opened for itself alone (a trip condition held, but
    /// fewer than `min_reporting_pods` pods reported trouble): each with
    /// the time left and the condition. The fleet's state of each is
    /// unchanged; health and metrics show them as local.
    #[must_use]
    pub fn local_opens(&self) -> Vec<(AgentId, Duration, TransitionReason)> {
        self.inner.local.list(self.inner.clock.now_ms())
    }

    /// Sets `local_open_seconds` of `metrics` from this pod's local opens.
    pub fn note_local_open(&self, metrics: &mut AgentMetrics) {
        metrics.local_open_seconds = self
            .inner
            .local
            .until(&metrics.agent_id, || self.inner.clock.now_ms())
            .map(|(until, now)| crate::model::backoff_seconds(until - now));
    }

    /// Whether a call of `elapsed` to `agent` counts as slow (see
    /// [`BreakerConfig::slow_call_duration`]; an agent's own setting, as
    /// this pod last saw it, wins).
    #[must_use]
    pub fn is_slow(&self, agent: &AgentId, elapsed: Duration) -> bool {
        self.inner.local.is_slow(&self.inner.config, agent, elapsed)
    }

    fn next_permit_id(&self) -> String {
        let n = self.inner.permit_counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:x}", self.inner.permit_prefix)
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
            } => Err(Rejected::by_circuit(agent, state, retry_after_ms)),
        }
    }

    /// Records an outcome for a permit; store errors fall back per policy,
    /// and a probe's outcome is also kept to be written when the store
    /// answers again (see [`pending`]).
    pub(crate) async fn settle(
        &self,
        agent: &AgentId,
        ticket: &Ticket,
        outcome: Outcome,
        origin: Origin,
        probe: bool,
    ) {
        self.settle_facts(agent, ticket, Facts::of(outcome), origin, probe)
            .await;
    }

    /// [`settle`](Self::settle) with what else the pod knows of the call.
    pub(crate) async fn settle_facts(
        &self,
        agent: &AgentId,
        ticket: &Ticket,
        facts: Facts,
        origin: Origin,
        probe: bool,
    ) {
        let outcome = facts.outcome;
        let config = &self.inner.config;
        match origin {
            Origin::Unrecorded => {}
            Origin::Fallback => {
                let transition = self
                    .inner
                    .fallback
                    .record_granted(config, agent, ticket, outcome);
                log_transition(transition.as_ref());
            }
            Origin::Store
                if outcome == Outcome::Success
                    && !facts.slow
                    && self.count_locally(agent, ticket, None) => {}
            Origin::Store if self.is_degraded() => {
                self.keep_probe(agent, ticket, outcome, probe);
                self.settle_by_policy(agent, ticket, outcome);
            }
            Origin::Store => match self
                .inner
                .store
                .report(
                    config,
                    agent,
                    ticket,
                    Report {
                        outcome,
                        slow: facts.slow,
                        retry_after_ms: facts.retry_after_ms,
                        pod: &self.inner.reporter,
                    },
                )
                .await
            {
                Ok(applied) => {
                    self.inner.health.succeeded();
                    self.observe(agent, &applied);
                    self.inner.local.note(
                        agent,
                        &applied.snapshot,
                        config,
                        applied.now_ms,
                        self.inner.clock.now_ms(),
                    );
                }
                Err(error) => {
                    tracing::warn!(agent = %agent, %error, outcome = outcome.as_str(), "breaker store failed to record an outcome");
                    if error.is_store_unavailable() {
                        self.keep_probe(agent, ticket, outcome, probe);
                    }
                    self.store_failed(&error);
                    self.settle_by_policy(agent, ticket, outcome);
                }
            },
        }
    }

    /// Keeps a probe's outcome that did not reach the store, to be written
    /// when it answers: else its lease would hold a probe slot until
    /// `recovery_timeout`. Other outcomes are not kept ([`pending`]).
    fn keep_probe(&self, agent: &AgentId, ticket: &Ticket, outcome: Outcome, probe: bool) {
        if pending::is_idempotent(probe, ticket) {
            self.inner.health.probe_kept();
            self.inner.pending.push(
                Arc::downgrade(&self.inner),
                self.inner.config.recovery_timeout,
                agent,
                ticket,
                outcome,
            );
        }
    }

    /// Counts a success in the cache when the circuit is known closed and
    /// clean fleet-wide; the flusher sends it on.
    #[inline]
    pub(crate) fn count_locally(
        &self,
        agent: &AgentId,
        ticket: &Ticket,
        entry: Option<&EntryRef>,
    ) -> bool {
        ticket.permit_id.is_empty()
            && self
                .inner
                .cache
                .as_ref()
                .is_some_and(|cache| cache.count_success(agent, entry, ticket.generation))
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
        settle(permit, call).await
    }
}

/// The two endings of a permit ([`Permit`], [`AgentPermit`]), so that one
/// body runs a call under either.
trait Settle {
    fn succeed(self) -> impl Future<Output = ()>;
    fn fail(self, reason: String) -> impl Future<Output = ()>;
}

impl Settle for Permit {
    fn succeed(self) -> impl Future<Output = ()> {
        self.success()
    }

    fn fail(self, reason: String) -> impl Future<Output = ()> {
        self.failure(reason)
    }
}

/// Awaits `call` and settles `permit` by its result: success on `Ok`,
/// failure (with the error's text) on `Err`.
async fn settle<P: Settle, T, E, F>(permit: P, call: F) -> Result<T, CallError<E>>
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    match call.await {
        Ok(value) => {
            permit.succeed().await;
            Ok(value)
        }
        Err(error) => {
            permit.fail(error.to_string()).await;
            Err(CallError::Inner(error))
        }
    }
}
