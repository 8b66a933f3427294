//! The seam between the breaker and where its state lives.
//!
//! A store does two things, in the shape of a rate limiter's state store:
//!
//! - [`BreakerStore::apply`] applies one operation of [`crate::model`]
//!   ([`Op`]) to one agent atomically and returns the agent's snapshot after
//!   it, the store's clock reading and the transition it caused, if any
//!   ([`Applied`]). [`StoreExt`] gives each operation its typed call
//!   (`acquire`, `record`, `flush`, ...).
//! - [`BreakerStore::feed`] offers the store's transitions as they happen,
//!   with a "this feed is trusted now" signal ([`feed`]): what the breaker's
//!   local cache follows.
//!
//! Two backends implement it: [`MemoryStore`] (embedded, one process,
//! under `memory/`) and [`RedisStore`] (shared by a fleet, changed only by Lua
//! scripts, under `redis/`: scripts, connections, the pub/sub feed, the
//! routing journal and the streams webhooks read). A third backend is its own
//! folder, one `mod` line here, and its tests.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::agent_id::AgentId;
use crate::config::{AgentSettings, BreakerConfig};
use crate::model::{Batch, Decision, ForceMode, Report, Snapshot, Ticket};

pub(crate) mod census;
mod error;
pub mod feed;
mod journal;
mod memory;
mod metered;
mod ops;
pub(crate) mod redis;

pub use census::Census;

/// Reads the default [`BreakerStore::read_many`] keeps in flight.
const READ_MANY_IN_FLIGHT: usize = 64;
pub use error::{Corruption, StoreError};
pub use feed::{Feed, FeedHandle, FeedOptions, FeedSink, FeedTarget, Resync};
pub use journal::{DEFAULT_FAILURES_CAP, FailureRecord, RoutingJournal};
pub use memory::MemoryStore;
pub use metered::{MeteredStore, StoreObserver};
pub use ops::StoreExt;
pub use redis::{
    DEFAULT_PREFIX, DEFAULT_TIMEOUT, ENV_CLUSTER_URLS, ENV_SENTINEL_MASTER, ENV_SENTINEL_URLS,
    ENV_URL, Keys, RedisStore, RedisStoreBuilder, RedisTarget, redact_url,
};

/// One operation of the model on one agent; see [`BreakerStore::apply`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Op<'a> {
    /// Ask for a permit ([`crate::model::acquire`]); creates the agent.
    Acquire {
        /// Unique per permit: a probe's lease is held under it.
        permit_id: &'a str,
    },
    /// Record a permit's outcome ([`crate::model::record`]); creates the agent.
    Record {
        /// The permit's id and the generation it was granted in.
        ticket: &'a Ticket,
        /// What the call did, and the pod that made it.
        report: Report<'a>,
    },
    /// Apply outcomes a pod counted locally ([`crate::model::flush`]).
    Flush(&'a Batch),
    /// The admin reset ([`crate::model::reset`]).
    Reset,
    /// The operator override ([`crate::model::force`]).
    Force {
        /// Open, closed, or back to automatic.
        mode: ForceMode,
        /// How long the force holds (`None`: until changed).
        ttl: Option<Duration>,
    },
    /// Read the agent's state, after lazy lease and force expiry
    /// ([`crate::model::refresh`]).
    Snapshot,
    /// Replace the settings stored for the agent ([`crate::model::configure`]);
    /// creates the agent.
    Configure(&'a AgentSettings),
}

impl Op<'_> {
    /// Whether the operation creates an agent the store has never seen
    /// (the others answer `None` for it and write nothing).
    #[must_use]
    pub fn creates(&self) -> bool {
        matches!(
            self,
            Op::Acquire { .. } | Op::Record { .. } | Op::Configure(_)
        )
    }

    /// The operation's name in logs and metrics: `acquire`, `record`, ...
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Op::Acquire { .. } => "acquire",
            Op::Record { .. } => "record",
            Op::Flush(_) => "flush",
            Op::Reset => "reset",
            Op::Force { .. } => "force",
            Op::Snapshot => "snapshot",
            Op::Configure(_) => "configure",
        }
    }
}

/// One pod's process-wide config as it published it in a shared store
/// ([`BreakerStore::fleet_configs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// The pod's instance id.
    pub instance: String,
    /// The SHA-1, in hex, of its [`BreakerConfig`]'s JSON.
    pub fingerprint: String,
    /// When it last wrote it, ms since the epoch (store time).
    pub written_ms: u64,
}

/// The result of one store operation on one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied<T> {
    /// What the operation answers: a [`Decision`] for an acquire (through
    /// [`BreakerStore::apply`], `Some` for an acquire and `None` otherwise).
    pub value: T,
    /// The agent's state after the operation.
    pub snapshot: crate::model::Snapshot,
    /// The transition the operation caused, already published by the store.
    pub transition: Option<crate::model::Transition>,
    /// The store's clock when it applied the operation, ms since the epoch.
    pub now_ms: u64,
}

/// Atomic, per-agent application of the breaker model, and the feed of its
/// transitions.
///
/// ## Behavior
///
/// - [`apply`](Self::apply) applies one [`Op`] to one agent atomically:
///   concurrent callers (tasks, or pods sharing a Redis) see the operations
///   in one order.
/// - Acquire and record create an agent on first use and register it in
///   [`agents`](Self::agents); the other operations on an agent the store
///   has never seen return `Ok(None)` and write nothing.
/// - Every transition is published exactly once, to the store's
///   [`feed`](Self::feed) (pub/sub and a stream for Redis).
#[async_trait]
pub trait BreakerStore: Debug + Send + Sync {
    /// Applies `op` to `agent` under `config`; `Ok(None)` for an operation
    /// that does not create an agent ([`Op::creates`]) on an unknown one.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    async fn apply(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        op: Op<'_>,
    ) -> Result<Option<Applied<Option<Decision>>>, StoreError>;

    /// Every agent the store knows, sorted.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    async fn agents(&self) -> Result<Vec<AgentId>, StoreError>;

    /// The store's transitions as they happen, and whether that feed can be
    /// trusted now; see [`Feed`].
    fn feed(&self) -> Feed;

    /// Many agents at once, each as [`Op::Snapshot`] would answer it
    /// (lapsed leases dropped, a force past its TTL ended) but with nothing
    /// written or published: `Ok(None)` for an agent the store does not
    /// know, [`StoreError::Corrupt`] for one whose stored state is corrupt;
    /// in the order of `agents`. What a listing of the fleet reads.
    ///
    /// The default applies [`Op::Snapshot`] to each, a few at a time (so
    /// it writes and publishes the refresh, as a read does); the memory
    /// store copies under its lock; on Redis it is one `HGETALL` per agent,
    /// many in flight, no script.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached (an agent's corrupt
    /// state is that agent's answer, not an error of the whole read).
    async fn read_many(
        &self,
        config: &BreakerConfig,
        agents: &[AgentId],
    ) -> Result<Vec<Result<Option<Snapshot>, StoreError>>, StoreError> {
        let mut read = Vec::with_capacity(agents.len());
        for chunk in agents.chunks(READ_MANY_IN_FLIGHT) {
            let snapshots = chunk
                .iter()
                .map(|agent| self.apply(config, agent, Op::Snapshot));
            for snapshot in futures::future::join_all(snapshots).await {
                read.push(match snapshot {
                    Ok(applied) => Ok(applied.map(|a| a.snapshot)),
                    Err(error @ StoreError::Corrupt { .. }) => Err(error),
                    Err(error) => return Err(error),
                });
            }
        }
        Ok(read)
    }

    /// How many agents the store knows (with those of `named` it does not)
    /// and which are not closed, without reading every agent; `None` (the
    /// default) when the store cannot tell that cheaply, and the caller
    /// reads every agent instead.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    async fn census(&self, named: &[AgentId]) -> Result<Option<Census>, StoreError> {
        let _ = named;
        Ok(None)
    }

    /// Forgets the agents left alone for [`BreakerConfig::idle_ttl`] (only
    /// closed ones) and answers how many; the breaker calls it now and
    /// then. On Redis the agents' keys expire by themselves and this
    /// removes them from the agents set, by one pod of the fleet per
    /// interval. The default does nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached.
    async fn sweep_idle(&self, config: &BreakerConfig) -> Result<u64, StoreError> {
        let _ = config;
        Ok(0)
    }

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

    /// Publishes this process's config `fingerprint` under `instance`, and
    /// answers every fingerprint the fleet's pods published lately, this
    /// one included, so that pods started with different process-wide
    /// configs do not disagree silently (see
    /// [`CircuitBreaker::config_agreement`](crate::CircuitBreaker::config_agreement)).
    /// `None` (the default) when the store is not shared: the embedded
    /// store serves one process, with nothing to compare. On Redis, the
    /// hash `PREFIX:configs`, where an entry not rewritten for 10 minutes
    /// is ignored and removed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    async fn fleet_configs(
        &self,
        instance: &str,
        fingerprint: &str,
    ) -> Result<Option<Vec<FleetConfig>>, StoreError> {
        let _ = (instance, fingerprint);
        Ok(None)
    }

    /// The fleet-wide journal of a router built on this store (recent
    /// routing failures, the routing-decision count) kept beside the
    /// breaker state; `None` (the default) leaves the router its own, in
    /// memory.
    fn journal(&self) -> Option<Arc<dyn RoutingJournal>> {
        None
    }
}
