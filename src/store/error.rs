//! [`StoreError`]: what can go wrong talking to a store.

use std::time::Duration;

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

    /// Whether the caller's settings are at fault.
    #[must_use]
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidSettings(_))
    }
}
