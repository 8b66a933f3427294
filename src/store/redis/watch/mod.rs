//! The pub/sub watcher: follows the transitions of a Redis store and feeds
//! them to the [`FeedSink`](crate::store::FeedSink) (the breaker's cache) and to subscribers
//! (DESIGN.md sections 3 and 4).
//!
//! - [`spawn`]: the task, one per process (per breaker), on a dedicated
//!   pub/sub connection, behind the store's [`FeedHandle`](crate::store::FeedHandle).
//! - [`message`]: strict decoding of the messages it reads.
//!
//! Pub/sub is at most once: a message published while the connection is
//! down is lost. The watcher makes up for it on every reconnection by
//! replaying the stream `PREFIX:transitions` and resyncing the cached
//! agents; nothing may depend on every message arriving.
//!
//! ## Behavior
//!
//! - The watcher holds a dedicated pub/sub connection, subscribed to
//!   `PREFIX:events` (transition JSON), `PREFIX:counts` (failure-count
//!   news) and `PREFIX:heartbeat`, plus a plain connection for `INFO`,
//!   `XREVRANGE` and `XREAD` while it (re)connects, and for the checks of
//!   transitions and the heartbeat script after. Establishing a connection is bounded by
//!   `max(store timeout, 1 s)`; every other command, and the answer to every
//!   ping, by `max(store timeout, ping_interval)`.
//! - On every (re)connection, in this order: `SUBSCRIBE`; compare the
//!   server's `run_id` (`INFO server`) with the last one seen, and on a
//!   change (Redis restarted, generations started again from 0; or a
//!   failover put another server, or on a cluster another master, in its
//!   place, which may lag behind what was cached) clear the
//!   cache and the record of delivered generations, and forget the last
//!   stream id; replay the stream after the last id read (exclusive), or, on
//!   the first connection and after a restart, only note its newest id;
//!   run the [`Resync`](crate::store::Resync) with the cached agents and await it (reading the
//!   subscription meanwhile, without trusting it yet); then
//!   [`FeedSink::trusted`](crate::store::FeedSink::trusted).
//!   Messages arriving during the replay wait in the connection and are
//!   read after it.
//! - Each transition, live or replayed, is first judged by its agent's
//!   (epoch, generation): the epoch names one history of the agent (a new
//!   one when its hash is created again after a `DEL` or `FLUSHALL`), and
//!   generations compare only within it. The next generation of the epoch
//!   last delivered is believed as it comes; one already delivered is old
//!   news; anything else (an agent's first message, another epoch, a jump)
//!   is checked against the agent's hash first (`HMGET epoch generation`,
//!   bounded like every command) and ignored unless the hash exists, has
//!   its epoch and has reached its generation
//!   ([`FeedHandle::unverified`](crate::store::FeedHandle::unverified) counts those, a WARN a second at most says
//!   so). So one forged message (any agent id, any generation) is never
//!   delivered and cannot silence an agent, and after a flush the agent's
//!   new generations 1, 2, ... are delivered at once.
//! - A believed transition goes to
//!   [`FeedSink::transition`](crate::store::FeedSink::transition)
//!   (which moves an entry forward only) and to subscribers once per
//!   (agent, epoch, generation), in increasing generation order per agent
//!   and epoch.
//!   Each count news goes to
//!   [`FeedSink::failure_count`](crate::store::FeedSink::failure_count).
//!   Every message, valid or not, and every ping answer confirms the
//!   subscription to the cache.
//! - The subscription is confirmed by the fleet heartbeat (`heartbeat.rs`):
//!   one pod, holding the lease `PREFIX:heartbeat:lease`, publishes on
//!   `PREFIX:heartbeat` every `ping_interval`; a watcher that has heard
//!   nothing for 1.5 intervals pings its own subscription (and tries the
//!   lease). A ping that fails or goes unanswered, an error, or the end of
//!   the connection counts it as dead: the cache's subscription is marked lost at once
//!   ([`FeedSink::untrusted`](crate::store::FeedSink::untrusted)),
//!   a WARN is logged once per outage (each failed retry only at DEBUG), and
//!   the watcher reconnects after `reconnect_min`, doubling up to
//!   `reconnect_max`, each delay drawn from its upper half. An INFO is logged
//!   when the subscription is back.
//! - A malformed message or stream entry (not JSON, wrong or missing
//!   fields, an invalid agent id, more than [`MAX_MESSAGE_BYTES`](message::MAX_MESSAGE_BYTES)) is
//!   counted ([`FeedHandle::malformed`](crate::store::FeedHandle::malformed)), logged at WARN with its channel and
//!   its first bytes (at most one such line per second; the line says how
//!   many were not logged), and skipped. The connection is kept.
//! - A replay reads at most 64 pages of 512 entries; a stream trimmed past
//!   the last id read, or longer than that, loses the rest, which the resync
//!   makes up for in the cache (not for subscribers). After a Redis restart
//!   the transitions between the restart and the reconnection are likewise
//!   not replayed.
//! - A resync that panics is logged and treated as done; the watcher lives
//!   on. If `INFO` is refused (an ACL, say), restarts go undetected and a
//!   WARN says so once.
//! - Memory is bounded: the record of delivered generations holds one entry
//!   per agent the store confirmed, and the connection is read continuously (messages do
//!   not pile up except while a replay runs).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

pub(crate) mod entries;
mod heartbeat;
pub(crate) mod message;
mod replay;
mod session;
mod task;
mod verify;
mod watcher;

pub(crate) use watcher::spawn;

/// What a watcher needs to follow a Redis store: a client for its dedicated
/// pub/sub connection, the key layout, and the operation timeout.
#[derive(Debug, Clone)]
pub(crate) struct WatchTarget {
    /// A client for the Redis the store uses (on a cluster, its first seed
    /// node; through Sentinel, the master when the store was built).
    pub(crate) client: ::redis::Client,
    /// Where the watcher connects on each (re)connection.
    pub(crate) route: WatchRoute,
    /// The store's key layout (channels and streams).
    pub(crate) keys: super::Keys,
    /// The store's operation timeout.
    pub(crate) timeout: Duration,
}

/// Where a watcher (re)connects, beyond [`WatchTarget::client`].
#[derive(Clone, Default)]
pub(crate) enum WatchRoute {
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
