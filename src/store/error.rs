//! [`StoreError`]: what can go wrong talking to a store.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agent_id::AgentId;

/// A store operation that did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer in time.
    #[error("Redis did not answer within {0:?}; check that it is reachable, or raise the timeout")]
    Timeout(Duration),
    /// The store could not be reached (connection refused, reset, DNS, auth).
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
    /// The store answered with an error.
    #[error("Redis refused the command: {0}")]
    Command(String),
    /// The store holds or returned data this crate cannot read.
    #[error("unexpected data in Redis ({what}): {detail}")]
    InvalidData {
        /// Where the data was.
        what: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The store's connection settings are wrong (a bad URL, say).
    #[error("invalid Redis settings: {0}")]
    InvalidSettings(String),
    /// One agent's stored state cannot be read (a field edited by hand, say):
    /// that agent alone is affected. Its calls follow the
    /// [`StorePolicy`](crate::StorePolicy) without counting towards degraded
    /// mode; an admin reset or force rewrites its state and repairs it.
    #[error(
        "the stored state of agent {agent} is corrupt: {corruption}; an admin reset or force \
         rewrites it (`fleet-breaker reset {agent}`)"
    )]
    Corrupt {
        /// The agent.
        agent: AgentId,
        /// What is wrong, and where.
        corruption: Corruption,
    },
}

/// What is wrong with an agent's stored state: the first field found
/// corrupt.
///
/// In JSON (health reports):
/// `{"key": "fleet-breaker:{agent-1}:state", "field": "failure_count", "value": "-5",
///   "expected": "an integer from 0 to 2^53 - 1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Corruption {
    /// The Redis key holding it.
    pub key: String,
    /// The hash field (`state`, `failure_count`, ...); `probes` for the
    /// probe leases; `type` when the key is not of the type expected.
    pub field: String,
    /// The value found: its first 64 bytes, each byte outside printable
    /// ASCII written `\xNN`; the key's type for `type`; `None` when the
    /// field is missing.
    #[serde(default)]
    pub value: Option<String>,
    /// What the field must hold.
    pub expected: String,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {} field {} is ", self.key, self.field)?;
        match &self.value {
            Some(value) => write!(f, "{value:?}")?,
            None => f.write_str("missing")?,
        }
        write!(f, ", expected {}", self.expected)
    }
}

impl StoreError {
    /// Whether the store could not be reached or did not answer in time: the
    /// errors a [`StorePolicy`](crate::StorePolicy) covers.
    #[must_use]
    pub fn is_store_unavailable(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::Unavailable(_))
    }

    /// Whether the store did not answer in time.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }

    /// Whether one agent's stored state is corrupt ([`StoreError::Corrupt`]).
    #[must_use]
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::Corrupt { .. })
    }

    /// What is corrupt, for [`StoreError::Corrupt`].
    #[must_use]
    pub fn corruption(&self) -> Option<&Corruption> {
        match self {
            Self::Corrupt { corruption, .. } => Some(corruption),
            _ => None,
        }
    }

    /// Whether the caller's settings are at fault.
    #[must_use]
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidSettings(_))
    }
}
