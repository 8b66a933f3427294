//! From the command line's store options to a store and a breaker.

use std::sync::Arc;

use super::{CliError, StoreArgs};
use crate::breaker::CircuitBreaker;
use crate::config::BreakerConfig;
use crate::http::{MeteredStore, Metrics};
use crate::store::{BreakerStore, MemoryStore, RedisStore, RedisTarget};

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
        let store = builder.build().await?;
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
        })
    }

    /// Whether the store is shared through Redis.
    pub(super) fn is_redis(&self) -> bool {
        self.redis.is_some()
    }

    /// A breaker on this store; with `metrics`, its store calls are timed
    /// into them. `watch` gives it a local cache and a subscription (needed
    /// for transitions on Redis).
    pub(super) fn breaker(
        &self,
        instance: &str,
        metrics: Option<&Metrics>,
        watch: bool,
    ) -> Result<CircuitBreaker, CliError> {
        let store: Arc<dyn BreakerStore> = match metrics {
            Some(metrics) => Arc::new(MeteredStore::new(Arc::clone(&self.store), metrics.clone())),
            None => Arc::clone(&self.store),
        };
        Ok(CircuitBreaker::builder()
            .shared_store(store)
            .config(self.config)
            .instance_id(instance)
            .local_cache(watch)
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
