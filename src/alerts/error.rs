//! [`AlertsError`]: why webhooks could not be configured or started.

/// Why [`WebhooksBuilder::build`](super::WebhooksBuilder::build) or
/// [`Webhooks::spawn_redis`](super::Webhooks::spawn_redis) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AlertsError {
    /// A webhook URL is not an absolute `http` or `https` URL with a host.
    #[error("invalid webhook URL {url}: {reason}")]
    InvalidUrl {
        /// The URL as given, its password (if any) shown as `set`.
        url: String,
        /// What is wrong with it, and what to give instead.
        reason: String,
    },
    /// A setting is out of range (zero tries, a backoff maximum below its
    /// base, a reclaim idle time not above the attempt timeout...).
    #[error("invalid webhook settings: {0}")]
    InvalidSettings(String),
    /// The HTTP client could not be built (no TLS roots, say).
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(String),
    /// Redis refused or did not answer while the consumer groups were
    /// created.
    #[error(
        "cannot set up webhook delivery in Redis: {0}; check that Redis (6.2 or later) is reachable"
    )]
    Redis(String),
}

impl AlertsError {
    /// Whether the error is in what the caller gave (a URL or a setting),
    /// not in the environment.
    #[must_use]
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidUrl { .. } | Self::InvalidSettings(_))
    }

    /// Whether Redis could not be reached or refused the setup.
    #[must_use]
    pub fn is_store_unavailable(&self) -> bool {
        matches!(self, Self::Redis(_))
    }
}
