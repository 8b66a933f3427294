//! [`RedisStore`]: breaker state shared by a fleet, changed only by Lua scripts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Applied, BreakerStore, Keys, StoreError};
use crate::agent_id::AgentId;
use crate::clock::Clock;
use crate::config::BreakerConfig;
use crate::model::{Decision, ForceMode, Outcome, Ticket};

/// The default key prefix, which namespaces one fleet.
pub const DEFAULT_PREFIX: &str = "fleet-breaker";

/// The default timeout of every Redis operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

/// The store a fleet shares: every agent's state in Redis (DESIGN.md section 3).
///
/// ## Behavior
///
/// - Every state change runs one Lua script (`lua/`), atomically, on the keys
///   of one agent; scripts read the time from Redis `TIME`, so pods with
///   skewed clocks agree.
/// - Scripts are invoked by hash and reloaded on `NOSCRIPT`, so a restarted or
///   flushed Redis is invisible to callers.
/// - Every operation is bounded by the timeout (default 100 ms); past it the
///   caller gets [`StoreError::Timeout`], never a hang.
/// - Clones share the connection pool.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: deadpool_redis::Pool,
    keys: Keys,
    timeout: Duration,
    transitions_max_len: u64,
    clock_override: Option<Arc<dyn Clock>>,
    url_display: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.inner.url_display)
            .field("prefix", &self.inner.keys.prefix())
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// Builder of a [`RedisStore`]; see [`RedisStore::builder`].
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    pool_size: usize,
    transitions_max_len: u64,
    clock_override: Option<Arc<dyn Clock>>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .field("transitions_max_len", &self.transitions_max_len)
            .field("clock_override", &self.clock_override.is_some())
            .finish()
    }
}

impl RedisStore {
    /// A builder for the Redis at `url` (`redis://[user:password@]host:port[/db]`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            pool_size: 16,
            transitions_max_len: 10_000,
            clock_override: None,
        }
    }

    /// The key layout this store uses.
    #[must_use]
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// The connection pool, for callers that need other commands on the same Redis.
    #[must_use]
    pub fn pool(&self) -> &deadpool_redis::Pool {
        &self.inner.pool
    }
}

impl RedisStoreBuilder {
    /// Namespaces every key (default `fleet-breaker`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bounds every Redis operation, connection included (default 100 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Most connections open at once (default 16).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Approximate cap of the `PREFIX:transitions` stream (default 10,000).
    pub fn transitions_max_len(mut self, len: u64) -> Self {
        self.transitions_max_len = len;
        self
    }

    /// **Test only.** Scripts take the time from `clock` (passed as an
    /// argument) instead of Redis `TIME`, so tests can drive time by hand.
    /// A fleet must never set this: pods would disagree on time.
    pub fn clock_override(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock_override = Some(clock);
        self
    }
}

/// The URL with any password replaced by `set`, for logs and Debug.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:set@{host}"),
        None => format!("{scheme}://set@{host}"),
    }
}
