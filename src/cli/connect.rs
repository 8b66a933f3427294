//! From the command line's store options to a store and a breaker.

use std::sync::Arc;

use super::{CliError, RedisUrl, StoreArgs};
use crate::breaker::CircuitBreaker;
use crate::config::BreakerConfig;
use crate::http::{MeteredStore, Metrics};
use crate::store::{BreakerStore, MemoryStore, RedisStore};

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
        let config = config(args)?;
        let Some(url) = args.redis_url.as_ref().map(RedisUrl::expose) else {
            return Err(CliError::new(
                "no Redis given: pass --redis-url URL or set REDIS_URL \
                 (`fleet-breaker demo` runs without one)",
            ));
        };
        let mut builder = RedisStore::builder(url)
            .prefix(args.prefix.clone())
            .timeout(args.redis_timeout);
        if let Some(path) = &args.redis_ca {
            let pem = std::fs::read(path).map_err(|e| {
                CliError::new(format!("cannot read the CA file {}: {e}", path.display()))
            })?;
            builder = builder.tls_root_certs(pem);
        }
        let store = builder.build().await?;
        let description = format!("redis at {}", store.url());
        Ok(Self {
            store: Arc::new(store.clone()),
            description,
            config,
            redis: Some(store),
        })
    }

    /// The fleet's Redis when one is given, else a fresh embedded store.
    pub(super) async fn redis_or_embedded(args: &StoreArgs) -> Result<Self, CliError> {
        if args.redis_url.is_some() {
            return Self::redis(args).await;
        }
        Ok(Self {
            store: Arc::new(MemoryStore::new()),
            description: "the embedded store (no REDIS_URL given: state lives in this process)"
                .to_owned(),
            config: config(args)?,
            redis: None,
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
