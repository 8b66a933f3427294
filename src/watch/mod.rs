//! The pub/sub watcher: follows the transitions of a Redis store and feeds
//! them to the local [`Cache`](crate::cache::Cache) and to subscribers
//! (DESIGN.md sections 3 and 4).
//!
//! - [`Watcher`]: the task, one per process (per breaker), on a dedicated
//!   pub/sub connection; see its `## Behavior` list.
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
//!   `PREFIX:events` (transition JSON) and `PREFIX:counts` (failure-count
//!   news), plus, while it (re)connects, a plain connection for `INFO`,
//!   `XREVRANGE` and `XREAD`. Establishing a connection is bounded by
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
//!   run the [`Resync`] with the cached agents and await it (reading the
//!   subscription meanwhile, without trusting it yet); then
//!   [`confirm_subscription`](crate::cache::Cache::confirm_subscription).
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
//!   ([`Watcher::unverified`] counts those, a WARN a second at most says
//!   so). So one forged message (any agent id, any generation) is never
//!   delivered and cannot silence an agent, and after a flush the agent's
//!   new generations 1, 2, ... are delivered at once.
//! - A believed transition goes to
//!   [`Cache::apply_transition`](crate::cache::Cache::apply_transition)
//!   (which moves an entry forward only) and to subscribers once per
//!   (agent, epoch, generation), in increasing generation order per agent
//!   and epoch.
//!   Each count news goes to
//!   [`Cache::apply_failure_count`](crate::cache::Cache::apply_failure_count).
//!   Every message, valid or not, and every ping answer confirms the
//!   subscription to the cache.
//! - The subscription is pinged every `ping_interval`. A ping that fails or
//!   goes unanswered, an error, or the end of the connection counts it as
//!   dead: the cache's subscription is marked lost at once
//!   ([`Cache::lose_subscription`](crate::cache::Cache::lose_subscription)),
//!   a WARN is logged once per outage (each failed retry only at DEBUG), and
//!   the watcher reconnects after `reconnect_min`, doubling up to
//!   `reconnect_max`, each delay drawn from its upper half. An INFO is logged
//!   when the subscription is back.
//! - A malformed message or stream entry (not JSON, wrong or missing
//!   fields, an invalid agent id, more than [`MAX_MESSAGE_BYTES`]) is
//!   counted ([`Watcher::malformed`]), logged at WARN with its channel and
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

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::agent_id::AgentId;

pub(crate) mod entries;
pub mod message;
mod replay;
mod session;
mod task;
mod verify;
mod watcher;

pub use message::{CountNews, MAX_MESSAGE_BYTES, MessageError, decode_counts, decode_transition};
pub use watcher::Watcher;

/// Capacity of the broadcast channel behind [`Watcher::subscribe`]: a
/// subscriber that falls further behind loses the oldest transitions.
pub const SUBSCRIBER_CAPACITY: usize = 1024;

/// What the watcher runs after every (re)connection, with the agents the
/// cache holds: read their snapshots again and apply them to the cache. The
/// watcher awaits it before it trusts the cache again.
pub type Resync = Arc<dyn Fn(Vec<AgentId>) -> BoxFuture<'static, ()> + Send + Sync>;

/// Timing of a [`Watcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// How often the subscription is pinged (default 300 ms). A ping not
    /// answered within `max(store timeout, ping_interval)` counts the
    /// connection as dead. Keep it below the cache's `max_staleness`, so
    /// that a live subscription is confirmed before the cache stops trusting
    /// it (a third of it is a good choice).
    pub ping_interval: Duration,
    /// The first reconnection delay (default 50 ms); it doubles on every
    /// failed attempt.
    pub reconnect_min: Duration,
    /// The longest reconnection delay (default 2 s). Each delay is drawn
    /// uniformly between half of it and all of it (jitter), so a fleet that
    /// lost Redis at once does not come back in lockstep.
    pub reconnect_max: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_millis(300),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
        }
    }
}

impl WatchOptions {
    /// The options with nonsense ruled out: intervals of at least 1 ms
    /// (a zero interval would spin), `reconnect_max >= reconnect_min`.
    pub(crate) fn sanitized(self) -> Self {
        let floor = Duration::from_millis(1);
        let reconnect_min = self.reconnect_min.max(floor);
        Self {
            ping_interval: self.ping_interval.max(floor),
            reconnect_min,
            reconnect_max: self.reconnect_max.max(reconnect_min),
        }
    }
}
