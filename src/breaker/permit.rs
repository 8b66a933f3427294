//! [`Permit`]: the right to make one call, settled by its outcome.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use super::quick::{self, Quick};
use super::{CircuitBreaker, Facts};
use crate::agent_id::AgentId;
use crate::cache::EntryRef;
use crate::model::{Outcome, Ticket};

/// Where a permit came from, and so where its outcome goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The breaker's store.
    Store,
    /// The fallback breaker of this pod (store failed, `FailLocal`).
    Fallback,
    /// Admitted without a decision (store failed, `FailOpen`): nothing to record.
    Unrecorded,
}

/// Permission to make one call to one agent.
///
/// Settle it with [`success`](Self::success), [`failure`](Self::failure) or
/// [`neutral`](Self::neutral).
///
/// ## Behavior
///
/// - Settling records the outcome in the store (one round trip on Redis);
///   a store error is logged, never returned: the call itself is done.
/// - A success the pod may count alone (a closed, clean circuit its cache
///   trusts) is counted when `success()` (or a `success_after` that was
///   not slow) is called, and the future it returns is ready at once; the
///   round trip of any other outcome happens when the future is awaited,
///   as with an `async fn`.
/// - A permit dropped unsettled counts as [`Outcome::Neutral`]: a probe
///   permit is handed back at once (on a spawned task, when a tokio runtime
///   is running; otherwise its lease lapses after `recovery_timeout`), and
///   nothing is counted. A closed-circuit permit needs no round trip at all.
#[must_use = "a permit should be settled with success(), failure() or neutral()"]
pub struct Permit {
    breaker: CircuitBreaker,
    agent: Agent,
    ticket: Ticket,
    probe: bool,
    origin: Origin,
    settled: bool,
}

/// The permit's agent: its id, or the cache entry that admitted it (which
/// holds the id, and lets the success be counted without a lookup).
#[derive(Debug)]
enum Agent {
    Id(AgentId),
    Cached(EntryRef),
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("agent", self.agent())
            .field("generation", &self.ticket.generation)
            .field("probe", &self.probe)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Permit {
    pub(crate) fn new(
        breaker: CircuitBreaker,
        agent: AgentId,
        ticket: Ticket,
        probe: bool,
        origin: Origin,
    ) -> Self {
        Self {
            breaker,
            agent: Agent::Id(agent),
            ticket,
            probe,
            origin,
            settled: false,
        }
    }

    /// A permit the local cache admitted: closed circuit, no probe, no id.
    #[inline]
    pub(crate) fn cached(breaker: CircuitBreaker, generation: u64, entry: EntryRef) -> Self {
        Self {
            breaker,
            agent: Agent::Cached(entry),
            ticket: Ticket {
                permit_id: String::new(),
                generation,
            },
            probe: false,
            origin: Origin::Store,
            settled: false,
        }
    }

    /// The agent this permit allows calling.
    #[must_use]
    #[inline]
    pub fn agent(&self) -> &AgentId {
        match &self.agent {
            Agent::Id(agent) => agent,
            Agent::Cached(entry) => entry.agent(),
        }
    }

    #[inline]
    fn cache_entry(&self) -> Option<&EntryRef> {
        match &self.agent {
            Agent::Id(_) => None,
            Agent::Cached(entry) => Some(entry),
        }
    }

    /// Whether this is a half-open probe (one of `half_open_max_calls`, fleet-wide).
    #[must_use]
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The circuit generation the permit was granted in.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.ticket.generation
    }

    /// Whether the decision came from the local fallback (the store failed).
    #[must_use]
    pub fn is_degraded(&self) -> bool {
        self.origin != Origin::Store
    }

    /// The call succeeded.
    pub fn success(self) -> impl Future<Output = ()> + Send {
        self.settle(Outcome::Success)
    }

    /// The call failed; `reason` is logged.
    pub fn failure(self, reason: impl Into<String>) -> impl Future<Output = ()> + Send {
        let reason = reason.into();
        tracing::debug!(agent = %self.agent(), %reason, "call failed");
        self.settle(Outcome::Failure)
    }

    /// The call says nothing about the agent (cancelled, or an error the
    /// caller's classifier ignores).
    pub fn neutral(self) -> impl Future<Output = ()> + Send {
        self.settle(Outcome::Neutral)
    }

    /// The call succeeded after `elapsed`: a slow call if that is at least
    /// `slow_call_duration` (for the slow-call rate policy).
    pub fn success_after(self, elapsed: Duration) -> impl Future<Output = ()> + Send {
        let slow = self.breaker.is_slow(self.agent(), elapsed);
        self.settle_facts(Facts {
            slow,
            ..Facts::of(Outcome::Success)
        })
    }

    /// The call failed after `elapsed` (slow or not, as
    /// [`success_after`](Self::success_after)); `reason` is logged.
    pub fn failure_after(
        self,
        reason: impl Into<String>,
        elapsed: Duration,
    ) -> impl Future<Output = ()> + Send {
        let reason = reason.into();
        tracing::debug!(agent = %self.agent(), %reason, "call failed");
        let slow = self.breaker.is_slow(self.agent(), elapsed);
        self.settle_facts(Facts {
            slow,
            ..Facts::of(Outcome::Failure)
        })
    }

    /// The agent refused the call and asked not to be called for
    /// `retry_after` (an HTTP 429 or 503 with `Retry-After`): a failure that
    /// opens the circuit fleet-wide at once, for at least that long (at most
    /// `max_backoff`), whatever the trip policies say.
    pub async fn failure_retry_after(self, reason: impl Into<String>, retry_after: Duration) {
        let reason = reason.into();
        tracing::debug!(agent = %self.agent(), %reason, ?retry_after, "call failed with a retry-after");
        self.settle_facts(Facts {
            retry_after_ms: Some(crate::config::duration_ms(retry_after)),
            ..Facts::of(Outcome::Failure)
        })
        .await;
    }

    /// Settles with `outcome`.
    pub fn settle(self, outcome: Outcome) -> impl Future<Output = ()> + Send {
        self.settle_facts(Facts::of(outcome))
    }

    /// The call succeeded: counted now, with no `.await`, where the pod
    /// may count it alone (a closed, clean circuit its cache trusts, as for
    /// a permit from [`CircuitBreaker::try_acquire`]); otherwise the
    /// permit is handed back, to be settled with
    /// [`success`](Self::success)`().await` (the store must hear of it).
    ///
    /// # Errors
    ///
    /// The permit, unsettled, when its success needs a round trip.
    #[inline]
    pub fn try_success(mut self) -> Result<(), Self> {
        if !self.settles_alone(Facts::of(Outcome::Success)) {
            return Err(self);
        }
        self.settled = true;
        Ok(())
    }

    /// Whether `facts` settle the permit with no round trip (a success
    /// counted locally, a neutral outcome of a permit that is not a probe);
    /// counts the success if so.
    #[inline]
    fn settles_alone(&self, facts: Facts) -> bool {
        let outcome = facts.outcome;
        (outcome == Outcome::Neutral && !self.probe)
            || (outcome == Outcome::Success
                && !facts.slow
                && self.origin == Origin::Store
                && self
                    .breaker
                    .count_locally(self.agent(), &self.ticket, self.cache_entry()))
    }

    /// Settles with `facts`: at once where the pod may
    /// ([`settles_alone`](Self::settles_alone)), else by the returned
    /// future's round trip.
    pub(crate) fn settle_facts(mut self, facts: Facts) -> Quick<'static, ()> {
        if self.settles_alone(facts) {
            // Not a probe: nothing for `drop` to hand back.
            self.settled = true;
            return quick::done(());
        }
        quick::later(async move {
            self.settled = true;
            self.breaker
                .settle_facts(self.agent(), &self.ticket, facts, self.origin, self.probe)
                .await;
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.settled || !self.probe {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(agent = %self.agent(), "probe permit dropped outside a runtime; its lease will lapse");
            return;
        };
        let breaker = self.breaker.clone();
        let agent = self.agent().clone();
        let ticket = self.ticket.clone();
        let origin = self.origin;
        runtime.spawn(async move {
            breaker
                .settle(&agent, &ticket, Outcome::Neutral, origin, true)
                .await;
        });
    }
}
