//! From the command line's store options to a store and a breaker.

use std::sync::Arc;

use super::{CliError, StoreArgs};
use crate::breaker::{BreakerError, CircuitBreaker};
use crate::config::BreakerConfig;
use crate::http::Metrics;
use crate::store::MeteredStore;
use crate::store::{BreakerStore, MemoryStore, RedisStore, RedisTarget, StoreError};

/// What a command runs on: the store, and how to name it in messages
/// (a Redis URL with its password hidden).
#[derive(Debug, Clone)]
pub struct Connection {
    /// The store.
    pub store: Arc<dyn BreakerStore>,
    /// `redis at redis://host:port` or `the embedded store`.
    pub description: String,
    /// The breaker settings every pod of the fleet shares.
    pub config: BreakerConfig,
    /// The Redis store itself, when the store is Redis.
    pub redis: Option<RedisStore>,
    /// How to name the Redis in an error: the target shown (password
    /// hidden), its kind, and the timeout of one call.
    target: Option<(String, &'static str, std::time::Duration)>,
}

impl Connection {
    /// The fleet's Redis, or an error saying how to give one.
    pub(super) async fn redis(args: &StoreArgs) -> Result<Self, CliError> {
        match target(args)? {
            Some(target) => Self::open(args, target).await,
            None => Err(CliError::new(
                "no Redis given: pass --redis-url URL (or --redis-cluster, --redis-sentinel) \
                 or set REDIS_URL (`fleet-breaker demo` runs without one)",
            )),
        }
    }

    /// The fleet's Redis when one is given, else a fresh embedded store.
    pub(super) async fn redis_or_embedded(args: &StoreArgs) -> Result<Self, CliError> {
        match target(args)? {
            Some(target) => Self::open(args, target).await,
            None => Ok(Self {
                store: Arc::new(MemoryStore::new()),
                description: "the embedded store (no REDIS_URL given: state lives in this process)"
                    .to_owned(),
                config: config(args)?,
                redis: None,
                target: None,
            }),
        }
    }

    /// The store of `target`, with the flags' prefix, timeout and CA.
    async fn open(args: &StoreArgs, target: RedisTarget) -> Result<Self, CliError> {
        let config = config(args)?;
        let shown = target.to_string();
        let kind = target.kind();
        let mut builder = RedisStore::builder_for(target)
            .prefix(args.prefix.clone())
            .timeout(args.redis_timeout);
        if let Some(path) = &args.redis_ca {
            let pem = std::fs::read(path).map_err(|e| {
                CliError::new(format!("cannot read the CA file {}: {e}", path.display()))
            })?;
            builder = builder.tls_root_certs(pem);
        }
        let store = builder
            .build()
            .await
            .map_err(|e| connect_error(&shown, kind, args.redis_timeout, &e))?;
        let description = match kind {
            "cluster" => format!("the redis cluster at {shown}"),
            "sentinel" => format!("redis through sentinel {shown}"),
            _ => format!("redis at {}", store.url()),
        };
        Ok(Self {
            store: Arc::new(store.clone()),
            description,
            config,
            redis: Some(store),
            target: Some((shown, kind, args.redis_timeout)),
        })
    }

    /// A store error of a command after connecting, said as
    /// [`connect_error`] says it: the address, what failed, what to try.
    pub(super) fn error(&self, error: BreakerError) -> CliError {
        match (error, &self.target) {
            (BreakerError::Store(e), Some((shown, kind, timeout))) => {
                connect_error(shown, kind, *timeout, &e)
            }
            (other, _) => other.into(),
        }
    }

    /// Whether the store is shared through Redis.
    pub(super) fn is_redis(&self) -> bool {
        self.redis.is_some()
    }

    /// A breaker on this store; with `metrics`, its store calls are timed
    /// into them. `watch` gives it a local cache and a subscription (needed
    /// for transitions on Redis); a `pod` (serve, demo) publishes its
    /// config's fingerprint for the fleet to compare.
    pub(super) fn breaker(
        &self,
        instance: &str,
        metrics: Option<&Metrics>,
        watch: bool,
        pod: bool,
    ) -> Result<CircuitBreaker, CliError> {
        let store: Arc<dyn BreakerStore> = match metrics {
            Some(metrics) => Arc::new(MeteredStore::new(
                Arc::clone(&self.store),
                Arc::new(metrics.clone()),
            )),
            None => Arc::clone(&self.store),
        };
        Ok(CircuitBreaker::builder()
            .shared_store(store)
            .config(self.config)
            .instance_id(instance)
            .local_cache(watch)
            // Only a pod that serves or routes publishes its config:
            // `status`, `watch`, `config` and the other tools do not.
            .config_check(pod)
            .build()?)
    }
}

/// The Redis the flags (or environment) name: one URL, a cluster or
/// Sentinel; `None` when none is given, an error when more than one is.
fn target(args: &StoreArgs) -> Result<Option<RedisTarget>, CliError> {
    let given = [
        args.redis_url.is_some(),
        args.redis_cluster.is_some(),
        args.redis_sentinel.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(CliError::new(
            "give one Redis: --redis-url (REDIS_URL), --redis-cluster (REDIS_CLUSTER_URLS) \
             or --redis-sentinel (REDIS_SENTINEL_URLS), not several",
        ));
    }
    if let Some(url) = &args.redis_url {
        return Ok(Some(RedisTarget::parse(url.expose())?));
    }
    if let Some(nodes) = &args.redis_cluster {
        return Ok(Some(RedisTarget::cluster_list(nodes.expose())?));
    }
    if let Some(sentinels) = &args.redis_sentinel {
        let master = args.sentinel_master.as_deref().unwrap_or_default();
        return Ok(Some(RedisTarget::sentinel_list(
            sentinels.expose(),
            master,
        )?));
    }
    Ok(None)
}

/// What a person needs when the Redis of the flags cannot be used: which
/// address, what failed, what to try; in the words of this tool, not of the
/// client library. `shown` is the target with its password hidden, `kind`
/// that of [`RedisTarget::kind`].
fn connect_error(
    shown: &str,
    kind: &str,
    timeout: std::time::Duration,
    error: &StoreError,
) -> CliError {
    let message = connect_message(shown, kind, timeout, error);
    if error.is_store_unavailable() {
        CliError::store_unavailable(message)
    } else {
        CliError::new(message)
    }
}

/// The words of [`connect_error`].
fn connect_message(
    shown: &str,
    kind: &str,
    timeout: std::time::Duration,
    error: &StoreError,
) -> String {
    let cause = match error {
        StoreError::Timeout(_) => {
            let tls = if shown.starts_with("rediss") {
                "; if that port serves plain Redis (no TLS), use a redis:// URL"
            } else {
                ""
            };
            return format!(
                "no answer from {} within {timeout:?}: check that {} there and that \
                 this machine can reach it, or raise --redis-timeout{tls}",
                place(shown, kind),
                who(kind)
            );
        }
        StoreError::Unavailable(cause) | StoreError::Command(cause) => cause.as_str(),
        other => return other.to_string(),
    };
    let has = |needles: &[&str]| needles.iter().any(|n| cause.contains(n));
    if has(&["refused"]) {
        format!(
            "cannot connect to {}: connection refused (nothing listens there): check that \
             {} there and that the host and port are right",
            place(shown, kind),
            who(kind)
        )
    } else if has(&[
        "lookup address",
        "not known",
        "nodename nor servname",
        "name resolution",
        "No address associated",
    ]) {
        format!(
            "cannot resolve the host name of {}: check the host in the URL",
            place(shown, kind)
        )
    } else if has(&[
        "AuthenticationFailed",
        "WRONGPASS",
        "NOAUTH",
        "invalid username-password",
        "authentication failed",
    ]) {
        format!(
            "{} refused the user name or password: check them in the URL \
             (redis://USER:PASSWORD@host:port, or redis://:PASSWORD@host:port without an \
             ACL user)",
            place(shown, kind)
        )
    } else if has(&["cluster support disabled"]) {
        format!(
            "{} is not a Redis Cluster (cluster support is disabled there): for one Redis, \
             use --redis-url (REDIS_URL)",
            shown.strip_prefix("cluster ").unwrap_or(shown)
        )
    } else if has(&["certificate", "Certificate", "handshake"])
        || (shown.starts_with("rediss") && has(&["TLS", "tls"]))
    {
        format!(
            "the TLS handshake with {} failed ({}): check that the port serves TLS and \
             give the CA that signed its certificate with --redis-ca",
            place(shown, kind),
            plain(cause)
        )
    } else {
        format!("cannot use {}: {}", place(shown, kind), plain(cause))
    }
}

/// `Redis at URL`, `the Redis Cluster nodes URL,URL` or `the sentinels
/// URL,URL (master NAME)`, from a [`RedisTarget`]'s display.
fn place(shown: &str, kind: &str) -> String {
    match kind {
        "cluster" => format!(
            "the Redis Cluster nodes {}",
            shown.strip_prefix("cluster ").unwrap_or(shown)
        ),
        "sentinel" => {
            let rest = shown.strip_prefix("sentinel ").unwrap_or(shown);
            match rest.split_once(" master ") {
                Some((urls, master)) => format!("the sentinels {urls} (master {master})"),
                None => format!("the sentinels {rest}"),
            }
        }
        _ => format!("Redis at {shown}"),
    }
}

/// Who should be running at the address: `Redis runs`, `the nodes run`, ...
fn who(kind: &str) -> &'static str {
    match kind {
        "cluster" => "the nodes run",
        "sentinel" => "the sentinels run",
        _ => "Redis runs",
    }
}

/// `cause` without the client library's wrappers and OS error numbers.
fn plain(cause: &str) -> String {
    let mut text = cause.to_owned();
    for wrapper in [
        "Error occurred while creating a new object: ",
        "Failed to create initial connections - ",
        "Io: ",
        "ResponseError: ",
        "- AuthenticationFailed",
    ] {
        text = text.replace(wrapper, "");
    }
    while let Some(start) = text.find(" (os error ") {
        let Some(len) = text[start..].find(')') else {
            break;
        };
        text.replace_range(start..=start + len, "");
    }
    text
}

/// The breaker settings: the `--config` JSON file, else the defaults.
fn config(args: &StoreArgs) -> Result<BreakerConfig, CliError> {
    let Some(path) = &args.config else {
        return Ok(BreakerConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
    let config: BreakerConfig = serde_json::from_str(&text)
        .map_err(|e| CliError::new(format!("{} is not a breaker config: {e}", path.display())))?;
    config
        .validate()
        .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    Ok(config)
}
