//! What the breaker answers when it will not, or cannot, do what was asked.

use std::fmt;
use std::time::Duration;

use crate::agent_id::{AgentId, AgentIdError};
use crate::model::CircuitState;
use crate::store::StoreError;

/// A call the breaker refused: the value `acquire` returns instead of a permit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The agent that was not called.
    pub agent: AgentId,
    /// The state that refused the call.
    pub state: CircuitState,
    /// When asking again may succeed, where that is known.
    pub retry_after: Option<Duration>,
    /// Why: the circuit, or the store being unreachable under
    /// [`StorePolicy::FailClosed`](crate::StorePolicy::FailClosed).
    pub cause: RejectCause,
}

/// Why a call was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectCause {
    /// The agent's circuit is open, half-open with no free probe, or forced open.
    Circuit,
    /// The store could not be reached and the policy is `FailClosed`.
    StoreUnavailable,
    /// This pod opened the agent for itself alone: a trip condition held
    /// but fewer than `min_reporting_pods` pods reported trouble, so the
    /// fleet's circuit stays as it is.
    LocalQuorum,
}

impl Rejected {
    /// A refusal by `agent`'s circuit in `state`, with the time to wait
    /// where known (ms), as the cache and the store answer it.
    pub(crate) fn by_circuit(
        agent: &AgentId,
        state: CircuitState,
        retry_after_ms: Option<u64>,
    ) -> Self {
        Self {
            agent: agent.clone(),
            state,
            retry_after: retry_after_ms.map(Duration::from_millis),
            cause: RejectCause::Circuit,
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cause {
            RejectCause::Circuit => write!(f, "{} rejected: circuit {}", self.agent, self.state)?,
            RejectCause::StoreUnavailable => write!(
                f,
                "{} rejected: breaker store unavailable (policy fail-closed)",
                self.agent
            )?,
            RejectCause::LocalQuorum => write!(
                f,
                "{} rejected: open on this pod only (a trip below the quorum of reporting pods)",
                self.agent
            )?,
        }
        if let Some(after) = self.retry_after {
            write!(f, ", retry after {:.3}s", after.as_secs_f64())?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}

/// The error of [`CircuitBreaker::call`](crate::CircuitBreaker::call): the
/// breaker's refusal kept apart from the call's own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError<E> {
    /// The breaker refused; the call was not made.
    Rejected(Rejected),
    /// The call was made and failed with this error.
    Inner(E),
}

impl<E> CallError<E> {
    /// Whether the breaker refused the call.
    #[must_use]
    pub fn is_rejected(&self) -> bool {
        matches!(self, Self::Rejected(_))
    }

    /// The call's own error, if it was made.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(e) => Some(e),
            Self::Rejected(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(r) => r.fmt(f),
            Self::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Rejected(r) => Some(r),
            Self::Inner(e) => Some(e),
        }
    }
}

/// An admin or read operation of the breaker that did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BreakerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such agent: it has never been called through this fleet's store.
    #[error("unknown agent {0:?}: no call has been made to it through this store")]
    UnknownAgent(AgentId),
    /// A bad agent id.
    #[error(transparent)]
    InvalidAgentId(#[from] AgentIdError),
    /// An argument out of range.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl BreakerError {
    /// Whether the store could not be reached or did not answer in time.
    #[must_use]
    pub fn is_store_unavailable(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_store_unavailable())
    }

    /// Whether the caller's input is at fault.
    #[must_use]
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidAgentId(_) | Self::InvalidInput(_))
            || matches!(self, Self::Store(e) if e.is_invalid_input())
    }

    /// Whether the agent is unknown to the store.
    #[must_use]
    pub fn is_unknown_agent(&self) -> bool {
        matches!(self, Self::UnknownAgent(_))
    }
}
