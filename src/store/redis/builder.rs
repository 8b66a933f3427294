//! [`RedisStoreBuilder`]: connection settings of a [`RedisStore`], checked
//! when it is built.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::ConnectionAddr;
use deadpool_redis::{Manager, Pool, PoolConfig, Runtime, Timeouts};

use super::super::StoreError;
use super::target::RedisTarget;
use super::topology::{self, Topology};
use super::watch::WatchRoute;
use super::{DEFAULT_PREFIX, DEFAULT_TIMEOUT, Inner, RedisStore, conn};
use super::{Keys, scripts};
use crate::clock::Clock;

/// What a PEM certificate block starts with.
const PEM_CERTIFICATE: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// Builder of a [`RedisStore`]; see [`RedisStore::builder`].
#[must_use]
pub struct RedisStoreBuilder {
    target: RedisTarget,
    prefix: String,
    timeout: Duration,
    pool_size: usize,
    transitions_max_len: u64,
    clock_override: Option<Arc<dyn Clock>>,
    /// PEM roots that replace the system's for `rediss://` (a private CA).
    tls_root_certs: Option<Vec<u8>>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .field("transitions_max_len", &self.transitions_max_len)
            .field("clock_override", &self.clock_override.is_some())
            .field("tls_root_certs", &self.tls_root_certs.is_some())
            .finish()
    }
}

impl RedisStoreBuilder {
    /// A `redis+cluster://` or `redis+sentinel://` URL selects that
    /// deployment; anything else is one Redis, checked at `build`.
    pub(super) fn new(url: String) -> Self {
        let target = match RedisTarget::parse(&url) {
            Ok(target @ (RedisTarget::Cluster(_) | RedisTarget::Sentinel { .. })) => target,
            _ => RedisTarget::Single(url),
        };
        Self::for_target(target)
    }

    pub(super) fn for_target(target: RedisTarget) -> Self {
        Self {
            target,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            pool_size: 16,
            transitions_max_len: 10_000,
            clock_override: None,
            tls_root_certs: None,
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

    /// Trusts only the CA certificates in `pem` (one or more PEM blocks) for
    /// a `rediss://` URL, instead of the system's roots: for a Redis whose
    /// certificate a private CA signed. The server's certificate and host
    /// name are verified either way; there is no switch to skip that.
    ///
    /// Without this, the roots are the system's, read by
    /// `rustls-native-certs`: the platform store, or only the PEM files that
    /// the `SSL_CERT_FILE` / `SSL_CERT_DIR` environment variables name when
    /// either is set. Needs the cargo feature `tls`.
    pub fn tls_root_certs(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certs = Some(pem.into());
        self
    }

    /// Checks the settings, opens the pool and checks that Redis answers a
    /// `PING` within the timeout.
    ///
    /// ## Behavior
    ///
    /// - One Redis is reached through a pool; a Redis Cluster through one
    ///   cluster connection (no pool: it is multiplexed, and routes each
    ///   script to the node of its agent's slot); Sentinel through the
    ///   master the sentinels name, asked again for every new connection.
    ///   On a cluster, `PING` goes to every master.
    /// - `redis://` is plain TCP; `rediss://` is TLS (cargo feature `tls`)
    ///   for every connection of the store and of its watcher, the server's
    ///   certificate checked against the system's roots or those of
    ///   [`tls_root_certs`](Self::tls_root_certs).
    /// - With TLS, the first store built installs rustls's `ring` crypto
    ///   provider as the process default, unless the application installed
    ///   one before.
    ///
    /// # Errors
    ///
    /// - [`StoreError::InvalidSettings`]: a URL that does not parse, a pool
    ///   size, timeout or stream cap of zero, an empty prefix or one with
    ///   braces; a `rediss://` URL or TLS roots without the cargo feature
    ///   `tls`, TLS roots with a `redis://` URL, roots that are not PEM
    ///   certificates, a `#insecure` URL; TLS roots with a cluster or Sentinel
    ///   target.
    /// - [`StoreError::Timeout`]: no answer within the timeout.
    /// - [`StoreError::Unavailable`] through Sentinel: no sentinel named a
    ///   reachable master (within the timeout, and at least 1 s).
    /// - [`StoreError::Unavailable`]: the connection was refused or failed
    ///   (host, port, password, database, TLS handshake); the message says
    ///   what to check.
    pub async fn build(self) -> Result<RedisStore, StoreError> {
        self.check()?;
        let single = matches!(self.target, RedisTarget::Single(_));
        if !single && self.tls_root_certs.is_some() {
            return Err(StoreError::InvalidSettings(
                "tls_root_certs is set, but TLS is supported with one Redis only, not yet \
                 with a cluster or Sentinel"
                    .to_owned(),
            ));
        }
        let topology = match self.target.clone() {
            RedisTarget::Single(url) => return self.build_single(url).await,
            RedisTarget::Cluster(nodes) => topology::cluster(&nodes, self.timeout)?,
            RedisTarget::Sentinel {
                sentinels,
                master_name,
            } => topology::sentinel(&sentinels, &master_name, self.timeout).await?,
        };
        let store = self.store(topology);
        store.ping().await?;
        Ok(store)
    }

    /// The store over `topology`, not yet checked.
    fn store(self, topology: Topology) -> RedisStore {
        RedisStore {
            inner: Arc::new(Inner {
                lanes: conn::Lanes::new(topology.source, self.pool_size, self.timeout),
                client: topology.client,
                route: topology.route,
                cluster: topology.cluster,
                keys: Keys::new(self.prefix),
                timeout: self.timeout,
                transitions_max_len: self.transitions_max_len,
                clock_override: self.clock_override,
                url_display: topology.display,
                failures_skipped: std::sync::atomic::AtomicU64::new(0),
                common: std::sync::Mutex::new(None),
            }),
        }
    }

    /// One Redis at `url`, through a pool.
    async fn build_single(self, url: String) -> Result<RedisStore, StoreError> {
        let url_display = redact_url(&url);
        let client = self.client(&url, &url_display)?;
        let tls = matches!(
            client.get_connection_info().addr(),
            ConnectionAddr::TcpTls { .. }
        );
        let mut pool_config = PoolConfig::new(self.pool_size);
        pool_config.timeouts = Timeouts {
            wait: Some(self.timeout),
            create: Some(self.timeout),
            recycle: Some(self.timeout),
        };
        // The pool connects with the client's own connection info: a
        // `deadpool_redis::Config` would drop the TLS roots.
        let pool = Manager::new(client.get_connection_info().clone())
            .map_err(|e| e.to_string())
            .and_then(|manager| {
                Pool::builder(manager)
                    .config(pool_config)
                    .runtime(Runtime::Tokio1)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| {
                StoreError::InvalidSettings(format!(
                    "cannot make a connection pool for {url_display}: {e}"
                ))
            })?;
        let store = self.store(Topology {
            source: conn::Source::Pool(pool),
            route: WatchRoute::Direct,
            client,
            display: url_display,
            cluster: false,
        });
        store.ping().await.map_err(|e| match e {
            StoreError::Unavailable(cause) if !tls => StoreError::Unavailable(format!(
                "{cause}; if that port serves TLS, use a rediss:// URL"
            )),
            other => other,
        })?;
        // Not fatal: a library or script missing from Redis is loaded on first use.
        if let Err(error) = store.inner.lanes.load(&scripts::all()).await {
            tracing::warn!(%error, "could not preload the scripts; they load on first use");
        }
        Ok(store)
    }

    /// The client of the store's URL, with the TLS roots if any.
    fn client(&self, url: &str, url_display: &str) -> Result<::redis::Client, StoreError> {
        let invalid = |detail: String| {
            StoreError::InvalidSettings(format!("cannot use the Redis URL {url_display}: {detail}"))
        };
        let tls_scheme = url
            .split_once("://")
            .is_some_and(|(scheme, _)| matches!(scheme, "rediss" | "valkeys"));
        if !cfg!(feature = "tls") && (tls_scheme || self.tls_root_certs.is_some()) {
            return Err(invalid(
                "TLS (a rediss:// URL, or tls_root_certs) needs the cargo feature `tls` of \
                 fleet-breaker"
                    .to_owned(),
            ));
        }
        if let Some(pem) = &self.tls_root_certs {
            if !tls_scheme {
                return Err(invalid(
                    "tls_root_certs is set but the URL is not TLS; use rediss://".to_owned(),
                ));
            }
            if !pem
                .windows(PEM_CERTIFICATE.len())
                .any(|w| w == PEM_CERTIFICATE)
            {
                return Err(invalid(
                    "tls_root_certs holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                        .to_owned(),
                ));
            }
        }
        let client = match &self.tls_root_certs {
            #[cfg(feature = "tls")]
            Some(pem) => ::redis::Client::build_with_tls(
                url,
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            _ => ::redis::Client::open(url),
        }
        .map_err(|e| {
            invalid(format!(
                "{e}; expected redis://[user:password@]host:port[/db], or rediss://... for TLS"
            ))
        })?;
        if let ConnectionAddr::TcpTls { insecure, .. } = client.get_connection_info().addr() {
            if *insecure {
                return Err(invalid(
                    "#insecure would skip the server's certificate check, which fleet-breaker \
                     does not allow; give a private CA with tls_root_certs instead"
                        .to_owned(),
                ));
            }
            install_crypto_provider();
        }
        Ok(client)
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

/// Makes rustls's `ring` provider the process default, unless there is one:
/// the redis crate asks rustls for the default, which exists on its own only
/// when exactly one provider is compiled in.
fn install_crypto_provider() {
    #[cfg(feature = "tls")]
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err: another thread installed one meanwhile, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// `url` with the password of its authority (between `://` and the last
/// `@` before the path) shown as `set`, for messages and `Debug`: a Redis
/// URL, a webhook URL, or a string that failed to parse as either. A lone
/// user-info part (`redis://secret@host`) is hidden whole, since Redis URLs
/// may carry a bare password there.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..end].rfind('@') else {
        return url.to_owned();
    };
    let after = &rest[at..];
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:set{after}"),
        None => format!("{scheme}://set{after}"),
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

    #[tokio::test]
    async fn a_cluster_or_sentinel_scheme_selects_that_deployment() {
        let builder =
            RedisStore::builder("redis+cluster://app:hunter2@10.0.0.1:7000,10.0.0.2:7000");
        let debug = format!("{builder:?}");
        assert!(
            debug.contains("cluster redis://app:set@10.0.0.1:7000"),
            "{debug}"
        );
        assert!(!debug.contains("hunter2"), "{debug}");
        let sentinel = RedisStore::builder("redis+sentinel://10.0.0.1:26379/mymaster");
        assert!(format!("{sentinel:?}").contains("master mymaster"));
        // TLS roots are for one Redis only: refused before connecting.
        let error = RedisStore::builder("redis+cluster://127.0.0.1:1")
            .tls_root_certs(b"-----BEGIN CERTIFICATE-----".to_vec())
            .build()
            .await
            .expect_err("refused");
        assert!(error.is_invalid_input(), "{error:?}");
    }
}
