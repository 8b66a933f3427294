//! [`Cache`]: versioned local snapshots, so a closed circuit is decided with
//! no round trip (DESIGN.md section 4).
//!
//! Internal: its `pub` items are reached from outside only through the
//! `testing` feature (`fleet_breaker::testing::Cache`).
#![cfg_attr(not(feature = "testing"), allow(unreachable_pub))]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::agent_id::AgentId;
use crate::clock::{Clock, HotClock};
use crate::config::duration_ms;
use crate::model::{Batch, CircuitState, Snapshot, Transition};
use crate::store::FeedSink;

/// What the cache can decide alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cached {
    /// Closed (or forced closed): admit, in this generation.
    Admit {
        /// The cached generation.
        generation: u64,
        /// The entry, for counting the permit's success without a lookup.
        entry: EntryRef,
    },
    /// Open (or forced open): reject, counted locally.
    Reject {
        /// The cached state.
        state: CircuitState,
        /// Until the cached `open_until`, where known.
        retry_after_ms: Option<u64>,
    },
    /// The cache cannot decide: ask the store.
    Ask,
}

/// What the cache decides for an entry already in hand (an agent handle's):
/// [`Cached`] without the entry, which the caller holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Judged {
    /// Admit, in this generation.
    Admit(u64),
    /// Reject, counted locally.
    Reject {
        /// The cached state.
        state: CircuitState,
        /// Until the cached `open_until`, where known.
        retry_after_ms: Option<u64>,
    },
    /// Ask the store.
    Ask,
}

/// A handle on one agent's cache entry, held by a locally admitted permit
/// and by an agent handle. An entry, once made, stays in the map for the
/// cache's life (forgetting blanks it in place), so a handle never goes
/// stale.
#[derive(Debug, Clone)]
pub(crate) struct EntryRef(Arc<Entry>);

impl EntryRef {
    /// The agent of the entry.
    pub(crate) fn agent(&self) -> &AgentId {
        &self.0.agent
    }
}

impl PartialEq for EntryRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for EntryRef {}

/// The part of a snapshot the cache decides with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct View {
    /// The agent's history ([`Snapshot::epoch`]); generations compare
    /// within one.
    epoch: u64,
    generation: u64,
    state: CircuitState,
    open_until_ms: u64,
    forced_until_ms: Option<u64>,
    /// `failure_count == 0` fleet-wide, as far as this pod knows.
    clean: bool,
}

#[derive(Debug)]
struct Entry {
    /// Whose entry this is (so a locally admitted permit need not hold a
    /// second copy of the id).
    agent: AgentId,
    view: SeqView,
    /// The subscription session in which the view was last confirmed by
    /// the store or by a believed message (0: not trusted). The entry is
    /// trusted while that session lasts: a subscription that stayed up
    /// delivered every transition since.
    verified_in: AtomicU64,
    /// Forgotten ([`Cache::clear`], [`Cache::forget`]): the entry acts as
    /// absent until news arrives, which then replaces its view whatever
    /// the generation. Written under the view's writer lock.
    blank: AtomicBool,
    /// The locally counted outcomes, per thread shard (`shards.rs`).
    counts: Counts,
    /// Local clock time of the last flush of this entry's counts.
    flushed_at_ms: AtomicU64,
    /// The agent's window holds failures or slow calls (or the fleet's
    /// failure count just left zero): its successes are calls a rate
    /// decision is about to divide by, so they are flushed every
    /// `window_flush_interval` instead of every `success_flush_interval`.
    hot: AtomicBool,
}

/// Per-agent snapshots of one pod, with their generations.
///
/// ## Behavior
///
/// - A cached closed circuit is admitted locally; a cached open circuit is
///   rejected locally until `open_until` (store time, estimated from the
///   offset measured on every store reply). Half-open always goes to the store:
///   probe permits are fleet-wide.
/// - An entry moves forward only: an event or snapshot of an older generation
///   is ignored. Generations compare within one epoch (one history of the
///   agent, [`Snapshot::epoch`]): a snapshot of another epoch (the agent was
///   deleted, or Redis flushed, and the agent made again) replaces the entry
///   whatever its generation, so an entry never stays frozen ahead of a
///   history that started again; an event of another epoch moves nothing
///   and sends the next decision to the store.
/// - The cache is trusted only while the pub/sub subscription is known to be
///   up (confirmed by a message, a fleet heartbeat or a ping within
///   `max_staleness`: [`Cache::confirm_subscription`]). An entry is trusted
///   while the subscription session in which the store (or a believed
///   message) last confirmed it lasts: a subscription that stayed up has
///   delivered every transition and count news since, in order, so the
///   entry needs no refresh by age. Losing the subscription
///   ([`Cache::lose_subscription`]) distrusts every entry until the store
///   answers for it again (the watcher's resync does, before it trusts the
///   new session).
/// - Successes on a circuit known to be closed and clean, and local rejections,
///   are counted here (per thread shard) and drained in batches by the
///   breaker's flusher.
/// - In front of a store of this process ([`Cache::authoritative`]), whose
///   feed hears every transition before the operation returns, the feed is
///   always trusted and entries never age: a closed circuit is decided with
///   no clock read, and the store takes the local counts of an agent
///   (`Cache::take`) before each operation on it.
#[derive(Debug)]
pub struct Cache {
    entries: RwLock<HashMap<AgentId, Arc<Entry>, foldhash::fast::RandomState>>,
    /// In front of a store of this process: always trusted, same clock.
    authoritative: bool,
    /// Owned shards per entry (`shards.rs`).
    width: usize,
    /// Local clock time until which the subscription counts as up: a
    /// message or a ping answer on it moves this `max_staleness` ahead.
    alive_until_ms: AtomicU64,
    /// The subscription session: moves on every loss of the subscription,
    /// which distrusts every entry verified in an earlier one.
    session: AtomicU64,
    max_staleness_ms: u64,
    clock: HotClock,
    /// The clock a success's time is read from where no trust check read
    /// `clock` already: `clock`, or a cheaper one
    /// ([`Cache::with_success_clock`]).
    success_clock: HotClock,
    /// Store time minus local time, ms.
    offset_ms: AtomicI64,
    /// Successes and rejections counted locally and already flushed.
    flushed_hits: AtomicU64,
    misses: AtomicU64,
}

/// Counters of cache use, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Calls settled with no round trip: admitted locally and succeeded
    /// (counted locally), or rejected locally. (Counted from the local
    /// counts themselves, so the hot path pays for no extra counter.)
    pub hits: u64,
    /// Decisions sent to the store.
    pub misses: u64,
}

impl Cache {
    /// An empty, untrusted cache.
    #[must_use]
    pub fn new(max_staleness: Duration, clock: Arc<dyn Clock>) -> Self {
        Self::reading(max_staleness, clock.into())
    }

    /// [`Cache::new`] on a clock of the hot path.
    pub(crate) fn reading(max_staleness: Duration, clock: HotClock) -> Self {
        Self {
            entries: RwLock::new(HashMap::default()),
            authoritative: false,
            width: shards::width(),
            alive_until_ms: AtomicU64::new(0),
            session: AtomicU64::new(1),
            max_staleness_ms: duration_ms(max_staleness),
            success_clock: clock.clone(),
            clock,
            offset_ms: AtomicI64::new(0),
            flushed_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// A cache in front of a store of this process, reading the store's
    /// clock: trusted from the start, entries never age, no clock offset.
    #[must_use]
    pub fn authoritative(clock: Arc<dyn Clock>) -> Self {
        Self {
            authoritative: true,
            alive_until_ms: AtomicU64::new(u64::MAX),
            max_staleness_ms: u64::MAX,
            ..Self::new(Duration::ZERO, clock)
        }
    }

    /// Reads the times of locally counted successes from `clock` (a ticking
    /// or coarse clock in front of a store on the system clock: a load or a
    /// few ns a read instead of a few tens, up to a tick early) where the
    /// decision read no clock (in front of a store of this process).
    #[must_use]
    pub(crate) fn with_success_clock(mut self, clock: HotClock) -> Self {
        self.success_clock = clock;
        self
    }

    /// Records that the subscription is alive now (a message, a ping answer,
    /// a completed resubscription): entries may be trusted for `max_staleness`.
    pub fn confirm_subscription(&self) {
        let until = self.clock.now_ms().saturating_add(self.max_staleness_ms);
        self.alive_until_ms.fetch_max(until, Ordering::AcqRel);
    }

    /// Records that the subscription is down: no entry is trusted until
    /// [`confirm_subscription`](Self::confirm_subscription), and then only
    /// those the store confirmed again since.
    pub fn lose_subscription(&self) {
        self.alive_until_ms.store(0, Ordering::Release);
        self.session.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether the subscription counts as up.
    #[cfg(any(test, feature = "testing"))]
    #[must_use]
    pub fn is_subscribed(&self) -> bool {
        self.clock.now_ms() < self.alive_until_ms.load(Ordering::Acquire)
    }

    /// Hits and misses so far.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let pending: u64 = entries
            .values()
            .map(|e| {
                let (successes, rejections) = e.counts.pending();
                successes + rejections
            })
            .sum();
        CacheStats {
            hits: self.flushed_hits.load(Ordering::Relaxed) + pending,
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// The store time now, estimated from the local clock and the offset.
    #[must_use]
    pub fn store_now_ms(&self) -> u64 {
        let local = self.clock.now_ms();
        local.saturating_add_signed(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Every agent with an entry.
    #[must_use]
    pub fn agents(&self) -> Vec<AgentId> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .iter()
            .filter(|(_, entry)| !entry.blank.load(Ordering::Relaxed))
            .map(|(agent, _)| agent.clone())
            .collect()
    }

    /// The cached generation of `agent`, if any.
    #[must_use]
    pub fn generation(&self, agent: &AgentId) -> Option<u64> {
        self.live(agent).map(|e| e.view.load().generation)
    }

    /// The cached state of `agent`, if any.
    #[cfg(any(test, feature = "testing"))]
    #[must_use]
    pub fn state(&self, agent: &AgentId) -> Option<CircuitState> {
        self.live(agent).map(|e| e.view.load().state)
    }

    /// Takes a snapshot the store answered at store time `store_now_ms`:
    /// measures the clock offset, and replaces the entry unless it holds a
    /// newer generation. The entry counts as verified now.
    pub fn apply_snapshot(&self, agent: &AgentId, snapshot: &Snapshot, store_now_ms: u64) {
        let local_now = self.clock.now_ms();
        if !self.authoritative {
            // (In front of a store of this process the clock is the store's:
            // no offset to measure.)
            let offset = i128::from(store_now_ms) - i128::from(local_now);
            self.offset_ms.store(
                i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX }),
                Ordering::Relaxed,
            );
        }
        let view = View {
            epoch: snapshot.epoch,
            generation: snapshot.generation,
            state: snapshot.state,
            open_until_ms: snapshot.open_until_ms,
            forced_until_ms: snapshot.forced_until_ms,
            clean: snapshot.failure_count == 0,
        };
        self.advance(
            agent,
            view,
            Some(self.now_session()),
            Generation::SameOrNewer,
        );
        let hot = snapshot
            .window
            .buckets
            .iter()
            .any(|b| b.failures + b.slow > 0);
        if let Some(entry) = self.entry(agent) {
            entry.hot.store(hot, Ordering::Relaxed);
        }
    }

    /// Takes a transition message. It moves the entry forward (never back);
    /// it verifies the entry only where the message says all the cache needs
    /// (not for `forced_closed`, whose expiry the message does not carry).
    pub fn apply_transition(&self, t: &Transition) {
        let view = View {
            epoch: t.epoch,
            generation: t.generation,
            state: t.to,
            open_until_ms: t.open_until_ms,
            forced_until_ms: (t.to == CircuitState::ForcedOpen && t.open_until_ms > 0)
                .then_some(t.open_until_ms),
            clean: t.to == CircuitState::Closed,
        };
        let verified = (t.to != CircuitState::ForcedClosed).then(|| self.now_session());
        // The message of the generation already held is old news.
        self.advance(&t.agent_id, view, verified, Generation::Newer);
    }

    /// Takes news that the fleet-wide failure count of `agent` left or
    /// returned to zero in `generation`.
    pub fn apply_failure_count(&self, agent: &AgentId, generation: u64, failure_count: u64) {
        let Some(entry) = self.entry(agent) else {
            return;
        };
        if failure_count > 0 {
            // A failure somewhere: the window (if the agent keeps one) is
            // about to divide by this pod's successes.
            entry.hot.store(true, Ordering::Relaxed);
        }
        entry.view.update(|view| {
            if entry.blank.load(Ordering::Relaxed) {
                return false;
            }
            if generation == view.generation {
                view.clean = failure_count == 0;
                return true;
            }
            if generation > view.generation {
                // We missed a transition: stop trusting the entry until the store answers.
                entry.verified_in.store(0, Ordering::Release);
            }
            false
        });
    }

    /// Forgets every entry (after a store restart, say): each is blanked
    /// in place, so that handles on it stay valid.
    pub fn clear(&self) {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        for entry in entries.values() {
            entries::blank(entry);
        }
    }
}

mod counts;
mod decide;
mod entries;
mod order;
mod seqview;
mod shards;

use order::Generation;
use seqview::SeqView;
use shards::Counts;

/// The cache is what the store's feed delivers to.
impl FeedSink for Cache {
    fn transition(&self, transition: &Transition) {
        self.apply_transition(transition);
    }

    fn failure_count(&self, agent: &AgentId, generation: u64, failure_count: u64) {
        self.apply_failure_count(agent, generation, failure_count);
    }

    fn trusted(&self) {
        self.confirm_subscription();
    }

    fn untrusted(&self) {
        self.lose_subscription();
    }

    fn forget_all(&self) {
        self.clear();
    }

    fn agents(&self) -> Vec<AgentId> {
        Cache::agents(self)
    }

    fn take_counts(&self, agent: &AgentId) -> Option<Batch> {
        self.take(agent)
    }
}

#[cfg(test)]
mod tests;
