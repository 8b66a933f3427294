//! Where breaker state lives: the [`BreakerStore`] trait and its two
//! implementations, [`MemoryStore`] (embedded, one process) and
//! [`RedisStore`] (shared by a fleet, changed only by Lua scripts).
//!
//! Both apply the pure functions of [`crate::model`] atomically per agent and
//! return the agent's snapshot after the operation, the store's clock reading
//! and the transition the operation caused, if any.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::agent_id::AgentId;
use crate::clock::Clock;
use crate::config::BreakerConfig;
use crate::model::{Batch, Decision, ForceMode, Outcome, Snapshot, Ticket, Transition};

mod error;
mod journal;
mod keys;
mod memory;
mod redis;
mod redis_journal;
mod scripts;

pub use error::{Corruption, StoreError};
pub use journal::{DEFAULT_FAILURES_CAP, FailureRecord, RoutingJournal};
pub use keys::Keys;
pub use memory::MemoryStore;
// One server or a cluster: the watcher's replay and the webhook deliveries.
pub(crate) use redis::Conn as RedisConn;
pub use redis::redact_url;
pub use redis::{
    DEFAULT_PREFIX, DEFAULT_TIMEOUT, ENV_CLUSTER_URLS, ENV_SENTINEL_MASTER, ENV_SENTINEL_URLS,
    ENV_URL, RedisStore, RedisStoreBuilder, RedisTarget,
};

/// The result of one store operation on one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied<T> {
    /// What the operation answers (a [`Decision`] for an acquire).
    pub value: T,
    /// The agent's state after the operation.
    pub snapshot: Snapshot,
    /// The transition the operation caused, already published by the store.
    pub transition: Option<Transition>,
    /// The store's clock when it applied the operation, ms since the epoch.
    pub now_ms: u64,
}

/// Atomic, per-agent application of the breaker model.
///
/// ## Behavior
///
/// - Each method applies one function of [`crate::model`] to one agent,
///   atomically: concurrent callers (tasks, or pods sharing a Redis) see the
///   operations in one order.
/// - `acquire` and `record` create an agent on first use and register it in
///   [`BreakerStore::agents`]; `reset`, `force` and `snapshot` of an agent the
///   store has never seen return `Ok(None)` and write nothing.
/// - Every transition is published exactly once (pub/sub and stream for
///   Redis, a broadcast for memory).
#[async_trait]
pub trait BreakerStore: RoutingJournal + Debug + Send + Sync {
    /// Asks for a permit; see [`crate::model::acquire`].
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    async fn acquire(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        permit_id: &str,
    ) -> Result<Applied<Decision>, StoreError>;

    /// Records an outcome; see [`crate::model::record`].
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    async fn record(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        ticket: &Ticket,
        outcome: Outcome,
    ) -> Result<Applied<()>, StoreError>;

    /// The admin reset; `Ok(None)` for an unknown agent.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    async fn reset(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
    ) -> Result<Option<Applied<()>>, StoreError>;

    /// The operator override; `Ok(None)` for an unknown agent.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    async fn force(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        mode: ForceMode,
        ttl: Option<Duration>,
    ) -> Result<Option<Applied<()>>, StoreError>;

    /// The agent's current state (after lazy lease and force expiry);
    /// `Ok(None)` for an unknown agent.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    async fn snapshot(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
    ) -> Result<Option<Applied<()>>, StoreError>;

    /// Every agent the store knows, sorted.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    async fn agents(&self) -> Result<Vec<AgentId>, StoreError>;

    /// Applies outcomes a pod counted locally; see [`crate::model::flush`].
    /// Creates nothing: `Ok(None)` for an unknown agent.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    async fn flush(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        batch: &Batch,
    ) -> Result<Option<Applied<()>>, StoreError>;

    /// Checks that the store answers: one `PING` on Redis, bounded by the
    /// store's timeout. The default (a store of one process, which cannot be
    /// unreachable) answers `Ok(())` at once. The breaker's prober calls it
    /// while the pod is in degraded mode, to learn when the store is back.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or answers wrongly.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// A short name for logs and health: `memory` or `redis`.
    fn kind(&self) -> &'static str;

    /// Where a watcher subscribes to this store's transitions, for a store
    /// shared through Redis; `None` (the default) for a store of one process,
    /// whose answers are always current and need no local cache.
    fn watch_target(&self) -> Option<WatchTarget> {
        None
    }

    /// The transitions of a store of one process, as they happen; `None`
    /// (the default) for a store whose transitions come through a watcher.
    fn local_transitions(&self) -> Option<broadcast::Receiver<Transition>> {
        None
    }
}

/// What a watcher needs to follow a Redis store: a client for its dedicated
/// pub/sub connection, the key layout, and the operation timeout.
#[derive(Debug, Clone)]
pub struct WatchTarget {
    /// A client for the Redis the store uses (on a cluster, its first seed
    /// node; through Sentinel, the master when the store was built).
    pub client: ::redis::Client,
    /// Where the watcher connects on each (re)connection.
    pub route: WatchRoute,
    /// The store's key layout (channels and streams).
    pub keys: Keys,
    /// The store's operation timeout.
    pub timeout: Duration,
    /// **Test only**: the clock the store's scripts use instead of Redis
    /// `TIME` ([`RedisStoreBuilder::clock_override`]); the cache must read
    /// the same clock.
    pub clock_override: Option<Arc<dyn Clock>>,
}

/// Where a watcher (re)connects, beyond [`WatchTarget::client`].
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum WatchRoute {
    /// Always [`WatchTarget::client`]: one Redis.
    #[default]
    Direct,
    /// A Redis Cluster. Scripts `PUBLISH`, which a cluster broadcasts to
    /// every node, so the subscription may sit on any node: each attempt
    /// takes the next of `nodes`. The stream replay and `INFO` go through
    /// `cluster`, which routes `XREAD` to the node owning the stream.
    Cluster {
        /// The seed nodes, tried in turn.
        nodes: Vec<::redis::Client>,
        /// The cluster, for the replay.
        cluster: Box<::redis::cluster::ClusterClient>,
    },
    /// Sentinel: the master is asked for before every connection, so the
    /// watcher follows a failover.
    Sentinel(Arc<tokio::sync::Mutex<::redis::sentinel::SentinelClient>>),
}

impl Debug for WatchRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Direct => f.write_str("Direct"),
            Self::Cluster { nodes, .. } => write!(f, "Cluster({} seed nodes)", nodes.len()),
            Self::Sentinel(_) => f.write_str("Sentinel"),
        }
    }
}
