//! [`AgentHandle`]: one agent's breaker, resolved once, for callers that
//! call the same agent again and again.

use std::fmt;
use std::future::Future;

use super::Facts;
use super::permit::Origin;
use super::quick;
use super::{CircuitBreaker, Permit, Rejected};
use crate::agent_id::AgentId;
use crate::cache::{EntryRef, Judged};
use crate::model::{Outcome, Ticket};

impl CircuitBreaker {
    /// A handle on `agent`'s circuit: the agent's cache entry looked up
    /// once, so that each [`AgentHandle::acquire`] and its success cost no
    /// hashing, no map lookup, no allocation and no shared write.
    ///
    /// ```
    /// use fleet_breaker::{AgentId, CircuitBreaker};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let breaker = CircuitBreaker::in_memory();
    /// let agent = breaker.agent(&AgentId::new("agent-1").unwrap());
    /// for _ in 0..3 {
    ///     let permit = agent.acquire().await.expect("closed");
    ///     permit.success().await;
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn agent(&self, agent: &AgentId) -> AgentHandle {
        AgentHandle {
            entry: self
                .inner
                .cache
                .as_ref()
                .map(|cache| cache.entry_ref(agent)),
            agent: agent.clone(),
            breaker: self.clone(),
        }
    }
}

/// One agent's circuit, resolved once; see [`CircuitBreaker::agent`].
///
/// ## Behavior
///
/// - Decides exactly as [`CircuitBreaker::acquire`] does for its agent: an
///   agent this pod opened for itself (a trip without its quorum) is
///   rejected, a circuit the local cache holds closed (or open) is admitted
///   (or rejected) from the entry the handle holds, and anything else goes
///   to the store as `acquire` would.
/// - The permit it hands out borrows the handle ([`AgentPermit`]): a
///   locally admitted one carries only its generation, and its success is
///   counted in the calling thread's shard of the entry, so threads sharing
///   a handle write no common cache line.
/// - Without a local cache (`local_cache(false)`, or a Redis store built
///   outside a runtime) every call goes through `acquire`.
/// - Cheap to clone; valid for the breaker's life (an entry the cache
///   forgets is blanked in place, never replaced).
#[derive(Clone)]
pub struct AgentHandle {
    breaker: CircuitBreaker,
    agent: AgentId,
    entry: Option<EntryRef>,
}

impl fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentHandle")
            .field("agent", &self.agent)
            .field("cached", &self.entry.is_some())
            .finish_non_exhaustive()
    }
}

impl AgentHandle {
    /// The agent.
    #[must_use]
    pub fn agent(&self) -> &AgentId {
        &self.agent
    }

    /// The breaker the handle decides with.
    #[must_use]
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Asks for a permit to call the agent; see [`CircuitBreaker::acquire`].
    ///
    /// # Errors
    ///
    /// [`Rejected`] when the circuit refuses the call (or, under
    /// `FailClosed`, when the store cannot be reached).
    #[inline]
    pub fn acquire(&self) -> impl Future<Output = Result<AgentPermit<'_>, Rejected>> + Send + '_ {
        quick::decide(move || {
            self.try_acquire().ok_or_else(|| -> quick::Boxed<'_, _> {
                Box::pin(async move {
                    let permit = self.breaker.acquire_from_store(&self.agent).await?;
                    Ok(AgentPermit {
                        handle: self,
                        kind: Kind::Store(Box::new(permit)),
                    })
                })
            })
        })
    }

    /// [`acquire`](Self::acquire) without waiting, as
    /// [`CircuitBreaker::try_acquire`]: the decision where the pod makes it
    /// alone, `None` where only the store can. With
    /// [`AgentPermit::try_success`], the fastest call this crate offers: a
    /// few loads and one store to this thread's own counter.
    ///
    /// ```
    /// use fleet_breaker::{AgentId, CircuitBreaker};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let breaker = CircuitBreaker::in_memory();
    /// let agent = breaker.agent(&AgentId::new("agent-1").unwrap());
    /// let permit = match agent.try_acquire() {
    ///     Some(decided) => decided,
    ///     None => agent.acquire().await,
    /// }
    /// .expect("closed");
    /// if let Err(permit) = permit.try_success() {
    ///     permit.success().await;
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
    pub fn try_acquire(&self) -> Option<Result<AgentPermit<'_>, Rejected>> {
        let inner = &self.breaker.inner;
        if let Some(rejected) = self.breaker.local_open(&self.agent) {
            return Some(Err(rejected));
        }
        let (Some(entry), Some(cache)) = (&self.entry, &inner.cache) else {
            return None;
        };
        if inner.health.is_degraded() {
            return None;
        }
        match cache.decide_entry(entry) {
            Judged::Admit(generation) => Some(Ok(AgentPermit {
                handle: self,
                kind: Kind::Local { generation },
            })),
            Judged::Reject {
                state,
                retry_after_ms,
            } => Some(Err(Rejected::by_circuit(
                &self.agent,
                state,
                retry_after_ms,
            ))),
            Judged::Ask => None,
        }
    }

    /// Counts a success in `generation` in the entry, where the pod may
    /// count it alone.
    #[inline]
    fn counts_success(&self, generation: u64) -> bool {
        let (Some(entry), Some(cache)) = (&self.entry, &self.breaker.inner.cache) else {
            return false;
        };
        cache.count_success_entry(entry, generation)
    }

    /// Runs `call` under a permit, as [`CircuitBreaker::call`] does.
    ///
    /// # Errors
    ///
    /// [`CallError::Rejected`](super::CallError::Rejected) when the breaker
    /// refused, [`CallError::Inner`](super::CallError::Inner) with the
    /// call's own error otherwise.
    pub async fn call<T, E, F>(&self, call: F) -> Result<T, super::CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        let permit = self.acquire().await.map_err(super::CallError::Rejected)?;
        super::settle(permit, call).await
    }
}

impl super::Settle for AgentPermit<'_> {
    fn succeed(self) -> impl Future<Output = ()> {
        self.success()
    }

    fn fail(self, reason: String) -> impl Future<Output = ()> {
        self.failure(reason)
    }
}

/// Permission to make one call through an [`AgentHandle`]; settle it as a
/// [`Permit`].
///
/// ## Behavior
///
/// - A permit the cache admitted borrows its handle and carries only the
///   circuit's generation: a success on a circuit still closed and clean is
///   counted locally, anything else reaches the store as a [`Permit`]'s
///   outcome would.
/// - A permit the store granted is a [`Permit`] inside, and behaves as one
///   (a probe dropped unsettled is handed back).
#[must_use = "a permit should be settled with success(), failure() or neutral()"]
pub struct AgentPermit<'a> {
    handle: &'a AgentHandle,
    kind: Kind,
}

enum Kind {
    /// Admitted by the cache: a closed circuit, no probe, no permit id.
    Local { generation: u64 },
    /// Granted by the store (or the policy); boxed, so that the common
    /// permit, the local one, is small to return and move.
    Store(Box<Permit>),
}

impl fmt::Debug for AgentPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Local { generation, .. } => f
                .debug_struct("AgentPermit")
                .field("agent", &self.handle.agent)
                .field("generation", generation)
                .field("local", &true)
                .finish(),
            Kind::Store(permit) => f.debug_tuple("AgentPermit").field(permit).finish(),
        }
    }
}

impl<'a> AgentPermit<'a> {
    /// The agent this permit allows calling.
    #[must_use]
    pub fn agent(&self) -> &AgentId {
        &self.handle.agent
    }

    /// The circuit generation the permit was granted in.
    #[must_use]
    pub fn generation(&self) -> u64 {
        match &self.kind {
            Kind::Local { generation, .. } => *generation,
            Kind::Store(permit) => permit.generation(),
        }
    }

    /// Whether this is a half-open probe.
    #[must_use]
    pub fn is_probe(&self) -> bool {
        matches!(&self.kind, Kind::Store(permit) if permit.is_probe())
    }

    /// Whether the decision came from the local fallback (the store failed).
    #[must_use]
    pub fn is_degraded(&self) -> bool {
        matches!(&self.kind, Kind::Store(permit) if permit.is_degraded())
    }

    /// The call succeeded.
    #[inline]
    pub fn success(self) -> impl Future<Output = ()> + Send + 'a {
        self.settle(Outcome::Success)
    }

    /// The call succeeded: counted now, with no `.await`, where the pod
    /// may count it alone; otherwise the permit is handed back, to be
    /// settled with [`success`](Self::success)`().await`. See
    /// [`Permit::try_success`].
    ///
    /// # Errors
    ///
    /// The permit, unsettled, when its success needs a round trip.
    #[inline]
    pub fn try_success(self) -> Result<(), Self> {
        let handle = self.handle;
        match self.kind {
            Kind::Local { generation } if handle.counts_success(generation) => Ok(()),
            Kind::Local { .. } => Err(self),
            Kind::Store(permit) => permit.try_success().map_err(|permit| AgentPermit {
                handle,
                kind: Kind::Store(Box::new(permit)),
            }),
        }
    }

    /// The call failed; `reason` is logged.
    pub async fn failure(self, reason: impl Into<String>) {
        match self.kind {
            Kind::Store(permit) => permit.failure(reason).await,
            Kind::Local { .. } => {
                let reason = reason.into();
                tracing::debug!(agent = %self.handle.agent, %reason, "call failed");
                self.settle(Outcome::Failure).await;
            }
        }
    }

    /// The call says nothing about the agent.
    pub fn neutral(self) -> impl Future<Output = ()> + Send + 'a {
        self.settle(Outcome::Neutral)
    }

    /// Settles with `outcome`: at once where the pod may (a neutral
    /// outcome, a success counted locally), else by the returned future's
    /// round trip, as [`Permit::settle`].
    #[inline]
    pub fn settle(self, outcome: Outcome) -> impl Future<Output = ()> + Send + 'a {
        let handle = self.handle;
        let generation = match self.kind {
            Kind::Store(permit) => return permit.settle_facts(Facts::of(outcome)),
            Kind::Local { generation } => generation,
        };
        if outcome == Outcome::Neutral {
            // Not a probe: a neutral outcome changes nothing.
            return quick::done(());
        }
        if outcome == Outcome::Success && handle.counts_success(generation) {
            return quick::done(());
        }
        let ticket = Ticket {
            permit_id: String::new(),
            generation,
        };
        quick::later(async move {
            handle
                .breaker
                .settle(&handle.agent, &ticket, outcome, Origin::Store, false)
                .await;
        })
    }
}
