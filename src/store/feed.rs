//! The feed: a store's transitions as they happen, and whether they can be
//! trusted now.
//!
//! The breaker's local cache decides closed and open circuits with no round
//! trip; it may do so only while it has heard every transition. A store
//! tells it what happens through a [`FeedSink`] and says when the feed is
//! complete ([`FeedSink::trusted`]) and when it may have missed something
//! ([`FeedSink::untrusted`]). [`MemoryStore`](super::MemoryStore) delivers
//! each transition as it applies it and is always trusted; a
//! [`RedisStore`](super::RedisStore) runs a pub/sub subscriber that replays
//! what it missed after each reconnection and pings to notice silence.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::agent_id::AgentId;
use crate::clock::Clock;
use crate::model::{Batch, Transition};

/// Capacity of the broadcast channel behind [`FeedHandle::subscribe`]: a
/// subscriber that falls further behind loses the oldest transitions.
pub const SUBSCRIBER_CAPACITY: usize = 1024;

/// Where a feed delivers what it hears: the breaker's local cache.
pub trait FeedSink: Debug + Send + Sync {
    /// A transition the store made (in generation order per agent).
    fn transition(&self, transition: &Transition);
    /// An agent's failure count changed within a generation.
    fn failure_count(&self, agent: &AgentId, generation: u64, failure_count: u64);
    /// The feed is complete up to now (connected, replayed, resynced, or a
    /// ping answered): decisions may rely on it.
    fn trusted(&self);
    /// The feed may have missed something: rely on it no longer.
    fn untrusted(&self);
    /// The store lost its state (a restart, a flush): forget every agent.
    fn forget_all(&self);
    /// The agents the sink holds, for the resync after a reconnection.
    fn agents(&self) -> Vec<AgentId>;
    /// Takes the outcomes the sink counted locally for `agent` and not yet
    /// flushed. A store of this process applies them (as a flush) before
    /// each operation on the agent, so its answers and reads stay exact
    /// while the sink decides closed circuits alone. Default: none.
    fn take_counts(&self, agent: &AgentId) -> Option<Batch> {
        let _ = agent;
        None
    }
}

/// What a feed runs after every (re)connection, with the agents the sink
/// holds: read their snapshots again and apply them to the sink. The feed
/// awaits it before it trusts the sink again.
pub type Resync = Arc<dyn Fn(Vec<AgentId>) -> BoxFuture<'static, ()> + Send + Sync>;

/// Timing of a remote feed (a subscription).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedOptions {
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

impl Default for FeedOptions {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_millis(300),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
        }
    }
}

impl FeedOptions {
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

/// What a feed is started with: the sink it feeds, the resync it runs after
/// each reconnection, and its timing.
#[derive(Clone)]
pub struct FeedTarget {
    /// The breaker's cache.
    pub sink: Arc<dyn FeedSink>,
    /// Rereads the sink's agents after a reconnection.
    pub resync: Resync,
    /// Pings and reconnections.
    pub options: FeedOptions,
}

impl Debug for FeedTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedTarget")
            .field("sink", &self.sink)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

type Start = Box<dyn FnOnce(Option<FeedTarget>) -> FeedHandle + Send>;

/// A store's feed, before it starts; see [`BreakerStore::feed`](super::BreakerStore::feed).
pub struct Feed {
    remote: bool,
    clock: Option<Arc<dyn Clock>>,
    start: Start,
}

impl Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("remote", &self.remote)
            .field("clock", &self.clock.is_some())
            .finish_non_exhaustive()
    }
}

impl Feed {
    /// The feed of a store in this process: its answers are always current,
    /// so a breaker needs no cache in front of it.
    pub fn in_process(
        start: impl FnOnce(Option<FeedTarget>) -> FeedHandle + Send + 'static,
    ) -> Self {
        Self {
            remote: false,
            clock: None,
            start: Box::new(start),
        }
    }

    /// The feed of a store across the network: every answer costs a round
    /// trip, so a breaker keeps a cache fed by this feed.
    pub fn remote(start: impl FnOnce(Option<FeedTarget>) -> FeedHandle + Send + 'static) -> Self {
        Self {
            remote: true,
            clock: None,
            start: Box::new(start),
        }
    }

    /// The clock the store's operations read, when it is not the system's
    /// (a test clock): a cache fed by this feed must read the same one.
    #[must_use]
    pub fn with_clock(mut self, clock: Option<Arc<dyn Clock>>) -> Self {
        self.clock = clock;
        self
    }

    /// Whether every answer of the store costs a round trip.
    #[must_use]
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// The store's clock, when it is not the system's; see [`Feed::with_clock`].
    #[must_use]
    pub fn clock(&self) -> Option<Arc<dyn Clock>> {
        self.clock.clone()
    }

    /// Starts the feed: into `target`'s sink when given; its transitions go
    /// to [`FeedHandle::subscribe`] receivers either way.
    #[must_use = "dropping the FeedHandle stops the feed"]
    pub fn start(self, target: Option<FeedTarget>) -> FeedHandle {
        (self.start)(target)
    }
}

/// A feed's counters, shared by its task and its handle.
#[derive(Debug, Default)]
pub(crate) struct FeedStats {
    /// Complete up to now; cleared the moment the connection is found dead.
    pub(crate) connected: AtomicBool,
    /// Completed reconnections after the first connection.
    pub(crate) reconnects: AtomicU64,
    /// Messages and stream entries skipped as malformed.
    pub(crate) malformed: AtomicU64,
    /// Transitions refused because the store did not confirm them.
    pub(crate) unverified: AtomicU64,
    /// The handle was dropped: the task ends at its next step, quietly.
    pub(crate) stopped: AtomicBool,
}

/// A running feed. Dropping it stops the feed and marks its sink untrusted.
///
/// ## Behavior
///
/// - [`subscribe`](Self::subscribe) receivers get each transition at most
///   once per (agent, epoch, generation), in increasing generation order per
///   agent and epoch. The channel holds [`SUBSCRIBER_CAPACITY`] (1024)
///   transitions; a receiver that falls further behind gets
///   [`broadcast::error::RecvError::Lagged`] and loses the oldest ones.
#[derive(Debug)]
pub struct FeedHandle {
    stats: Arc<FeedStats>,
    sender: broadcast::Sender<Transition>,
    /// The subscriber task of a remote feed.
    task: Option<JoinHandle<()>>,
    sink: Option<Arc<dyn FeedSink>>,
}

impl FeedHandle {
    /// A handle over `sender`'s transitions, with `stats` shared by the
    /// task that feeds `sink` (if any).
    pub(crate) fn new(
        stats: Arc<FeedStats>,
        sender: broadcast::Sender<Transition>,
        task: Option<JoinHandle<()>>,
        sink: Option<Arc<dyn FeedSink>>,
    ) -> Self {
        Self {
            stats,
            sender,
            task,
            sink,
        }
    }

    /// The handle of a store in this process that sends its transitions on
    /// `sender` as it applies them (a backend of one process): always
    /// connected; it feeds no sink (a breaker keeps no cache in front of
    /// such a store).
    #[must_use]
    pub fn in_process(sender: broadcast::Sender<Transition>) -> Self {
        let stats = Arc::new(FeedStats::default());
        stats.connected.store(true, Ordering::Release);
        Self::new(stats, sender, None, None)
    }

    /// A receiver of every transition from now on; see the type's
    /// behaviour list for ordering and lag.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.sender.subscribe()
    }

    /// Whether the feed is complete up to now: for a subscription,
    /// connected, replayed and resynced, and not yet found dead.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.stats.connected.load(Ordering::Acquire)
    }

    /// Completed reconnections after the first connection.
    #[must_use]
    pub fn reconnects(&self) -> u64 {
        self.stats.reconnects.load(Ordering::Relaxed)
    }

    /// Messages (and stream entries) skipped as malformed so far.
    #[must_use]
    pub fn malformed(&self) -> u64 {
        self.stats.malformed.load(Ordering::Relaxed)
    }

    /// Well-formed transitions ignored so far because the store did not
    /// confirm them: an agent it does not know, another epoch, a generation
    /// the agent has not reached (forged, or made stale by a flush), or the
    /// store unreadable at the time of the check.
    #[must_use]
    pub fn unverified(&self) -> u64 {
        self.stats.unverified.load(Ordering::Relaxed)
    }
}

impl Drop for FeedHandle {
    fn drop(&mut self) {
        self.stats.stopped.store(true, Ordering::Release);
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.stats.connected.store(false, Ordering::Release);
        if let Some(sink) = &self.sink {
            sink.untrusted();
        }
    }
}
