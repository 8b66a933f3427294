//! [`RedisStoreBuilder`]: connection settings of a [`RedisStore`], checked
//! when it is built.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::{PoolConfig, Runtime, Timeouts};

use super::super::{Keys, StoreError};
use super::{DEFAULT_PREFIX, DEFAULT_TIMEOUT, Inner, RedisStore, conn};
use crate::clock::Clock;

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

impl RedisStoreBuilder {
    pub(super) fn new(url: String) -> Self {
        Self {
            url,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            pool_size: 16,
            transitions_max_len: 10_000,
            clock_override: None,
        }
    }

    /// Namespaces every key (default `fleet-breaker`); no braces, which
    /// would break the agents' hash tags.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bounds every Redis operation, connection included (default 100 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Most connections open at once (default 16); also the number of
    /// multiplexed connections the scripts are spread over.
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

    /// Checks the settings, opens the pool and checks that Redis answers a
    /// `PING` within the timeout.
    ///
    /// # Errors
    ///
    /// - [`StoreError::InvalidSettings`]: a URL that does not parse, a pool
    ///   size, timeout or stream cap of zero, an empty prefix or one with braces.
    /// - [`StoreError::Timeout`]: no answer within the timeout.
    /// - [`StoreError::Unavailable`]: the connection was refused or failed
    ///   (host, port, password, database); the message says what to check.
    pub async fn build(self) -> Result<RedisStore, StoreError> {
        self.check()?;
        let url_display = redact_url(&self.url);
        let client = ::redis::Client::open(self.url.as_str()).map_err(|e| {
            StoreError::InvalidSettings(format!(
                "cannot use the Redis URL {url_display}: {e}; expected \
                 redis://[user:password@]host:port[/db]"
            ))
        })?;
        let mut config = deadpool_redis::Config::from_url(self.url);
        let mut pool_config = PoolConfig::new(self.pool_size);
        pool_config.timeouts = Timeouts {
            wait: Some(self.timeout),
            create: Some(self.timeout),
            recycle: Some(self.timeout),
        };
        config.pool = Some(pool_config);
        let pool = config.create_pool(Some(Runtime::Tokio1)).map_err(|e| {
            StoreError::InvalidSettings(format!(
                "cannot use the Redis URL {url_display}: {e}; expected \
                 redis://[user:password@]host:port[/db]"
            ))
        })?;
        let store = RedisStore {
            inner: Arc::new(Inner {
                lanes: conn::Lanes::new(pool, self.pool_size, self.timeout),
                client,
                keys: Keys::new(self.prefix),
                timeout: self.timeout,
                transitions_max_len: self.transitions_max_len,
                clock_override: self.clock_override,
                url_display,
            }),
        };
        store.ping().await?;
        Ok(store)
    }

    fn check(&self) -> Result<(), StoreError> {
        let invalid = |message: String| Err(StoreError::InvalidSettings(message));
        if self.pool_size == 0 {
            return invalid("pool_size is 0; it must be at least 1".to_owned());
        }
        if self.timeout.is_zero() {
            return invalid("timeout is 0; it must be at least 1 ms".to_owned());
        }
        if self.transitions_max_len == 0 {
            return invalid("transitions_max_len is 0; it must be at least 1".to_owned());
        }
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            return invalid(format!(
                "prefix {:?} is empty or holds a brace; braces would break the \
                 {{AGENT}} hash tags of the key layout",
                self.prefix
            ));
        }
        Ok(())
    }
}

/// The URL with any password replaced by `set`, for logs and Debug.
#[must_use]
pub(crate) fn redact_url(url: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_password() {
        let builder = RedisStore::builder("redis://app:hunter2@redis.internal:6379/2");
        let debug = format!("{builder:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains("redis://app:set@redis.internal:6379/2"),
            "{debug}"
        );
        assert_eq!(redact_url("redis://:pw@h:1"), "redis://:set@h:1");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
    }

    #[tokio::test]
    async fn bad_settings_are_refused_before_connecting() {
        for builder in [
            RedisStore::builder("redis://127.0.0.1:1").pool_size(0),
            RedisStore::builder("redis://127.0.0.1:1").timeout(Duration::ZERO),
            RedisStore::builder("redis://127.0.0.1:1").prefix("a{b}"),
            RedisStore::builder("redis://127.0.0.1:1").transitions_max_len(0),
            RedisStore::builder("not a url at all"),
        ] {
            let error = builder.build().await.expect_err("invalid settings");
            assert!(error.is_invalid_input(), "{error:?}");
        }
    }
}
