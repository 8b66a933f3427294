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
use crate::clock::Clock;
use crate::config::duration_ms;
use crate::model::{CircuitState, Snapshot, Transition};
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

/// A handle on one agent's cache entry, held by a locally admitted permit.
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
    /// Local clock reading when the view was last confirmed by the store.
    verified_at_ms: AtomicU64,
    pending_successes: AtomicU64,
    pending_rejections: AtomicU64,
    /// Store-time estimate of the last locally counted success (0: none).
    pending_last_success_ms: AtomicU64,
    /// Decided from since the last [`Cache::due`]: worth keeping fresh.
    touched: AtomicBool,
    /// Local clock time of the last flush of this entry's counts.
    flushed_at_ms: AtomicU64,
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
///   up (confirmed by a message or a ping within `max_staleness`:
///   [`Cache::confirm_subscription`]) and an entry is younger than
///   `max_staleness`.
/// - Successes on a circuit known to be closed and clean, and local rejections,
///   are counted here and drained in batches by the breaker's flusher.
#[derive(Debug)]
pub struct Cache {
    entries: RwLock<HashMap<AgentId, Arc<Entry>, foldhash::fast::RandomState>>,
    /// Local clock time until which the subscription counts as up: a
    /// message or a ping answer on it moves this `max_staleness` ahead.
    alive_until_ms: AtomicU64,
    max_staleness_ms: u64,
    clock: Arc<dyn Clock>,
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
        Self {
            entries: RwLock::new(HashMap::default()),
            alive_until_ms: AtomicU64::new(0),
            max_staleness_ms: duration_ms(max_staleness),
            clock,
            offset_ms: AtomicI64::new(0),
            flushed_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Records that the subscription is alive now (a message, a ping answer,
    /// a completed resubscription): entries may be trusted for `max_staleness`.
    pub fn confirm_subscription(&self) {
        let until = self.clock.now_ms().saturating_add(self.max_staleness_ms);
        self.alive_until_ms.fetch_max(until, Ordering::AcqRel);
    }

    /// Records that the subscription is down: no entry is trusted until
    /// [`confirm_subscription`](Self::confirm_subscription).
    pub fn lose_subscription(&self) {
        self.alive_until_ms.store(0, Ordering::Release);
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
                e.pending_successes.load(Ordering::Relaxed)
                    + e.pending_rejections.load(Ordering::Relaxed)
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

    /// Decides locally where the cache may; counts a local rejection.
    pub(crate) fn decide(&self, agent: &AgentId) -> Cached {
        let decision = self.decide_inner(agent);
        if decision == Cached::Ask {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        decision
    }

    fn decide_inner(&self, agent: &AgentId) -> Cached {
        let local_now = self.clock.now_ms();
        if local_now >= self.alive_until_ms.load(Ordering::Acquire) {
            return Cached::Ask;
        }
        let Some(entry) = self.entry(agent) else {
            return Cached::Ask;
        };
        if !self.fresh(&entry, local_now) {
            return Cached::Ask;
        }
        if !entry.touched.load(Ordering::Relaxed) {
            entry.touched.store(true, Ordering::Relaxed);
        }
        let view = entry.view.load();
        let store_now = local_now.saturating_add_signed(self.offset_ms.load(Ordering::Relaxed));
        let force_running = view.forced_until_ms.is_none_or(|until| store_now < until);
        match view.state {
            CircuitState::Closed => Cached::Admit {
                generation: view.generation,
                entry: EntryRef(entry),
            },
            CircuitState::ForcedClosed if force_running => Cached::Admit {
                generation: view.generation,
                entry: EntryRef(entry),
            },
            CircuitState::Open if store_now < view.open_until_ms => {
                entry.pending_rejections.fetch_add(1, Ordering::Relaxed);
                Cached::Reject {
                    state: view.state,
                    retry_after_ms: Some(view.open_until_ms - store_now),
                }
            }
            CircuitState::ForcedOpen if force_running => {
                entry.pending_rejections.fetch_add(1, Ordering::Relaxed);
                Cached::Reject {
                    state: view.state,
                    retry_after_ms: view.forced_until_ms.map(|until| until - store_now),
                }
            }
            _ => Cached::Ask,
        }
    }

    /// Every agent with an entry.
    #[must_use]
    pub fn agents(&self) -> Vec<AgentId> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.keys().cloned().collect()
    }

    /// The cached generation of `agent`, if any.
    #[must_use]
    pub fn generation(&self, agent: &AgentId) -> Option<u64> {
        self.entry(agent).map(|e| e.view.load().generation)
    }

    /// The cached state of `agent`, if any.
    #[cfg(any(test, feature = "testing"))]
    #[must_use]
    pub fn state(&self, agent: &AgentId) -> Option<CircuitState> {
        self.entry(agent).map(|e| e.view.load().state)
    }

    /// Takes a snapshot the store answered at store time `store_now_ms`:
    /// measures the clock offset, and replaces the entry unless it holds a
    /// newer generation. The entry counts as verified now.
    pub fn apply_snapshot(&self, agent: &AgentId, snapshot: &Snapshot, store_now_ms: u64) {
        let local_now = self.clock.now_ms();
        let offset = i128::from(store_now_ms) - i128::from(local_now);
        self.offset_ms.store(
            i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX }),
            Ordering::Relaxed,
        );
        let view = View {
            epoch: snapshot.epoch,
            generation: snapshot.generation,
            state: snapshot.state,
            open_until_ms: snapshot.open_until_ms,
            forced_until_ms: snapshot.forced_until_ms,
            clean: snapshot.failure_count == 0,
        };
        self.advance(agent, view, Some(local_now), Generation::SameOrNewer);
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
        let verified = (t.to != CircuitState::ForcedClosed).then(|| self.clock.now_ms());
        // The message of the generation already held is old news.
        self.advance(&t.agent_id, view, verified, Generation::Newer);
    }

    /// Takes news that the fleet-wide failure count of `agent` left or
    /// returned to zero in `generation`.
    pub fn apply_failure_count(&self, agent: &AgentId, generation: u64, failure_count: u64) {
        let Some(entry) = self.entry(agent) else {
            return;
        };
        entry.view.update(|view| {
            if generation == view.generation {
                view.clean = failure_count == 0;
                return true;
            }
            if generation > view.generation {
                // We missed a transition: stop trusting the entry until the store answers.
                entry.verified_at_ms.store(0, Ordering::Relaxed);
            }
            false
        });
    }

    /// Forgets every entry (after a store restart, say).
    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn advance(&self, agent: &AgentId, view: View, verified_at: Option<u64>, accept: Generation) {
        if let Some(entry) = self.entry(agent) {
            entry
                .view
                .update(|current| match order::step(current, view, accept) {
                    Step::Keep => false,
                    Step::Distrust => {
                        entry.verified_at_ms.store(0, Ordering::Relaxed);
                        false
                    }
                    Step::Replace(view) => {
                        *current = view;
                        entry
                            .verified_at_ms
                            .store(verified_at.unwrap_or(0), Ordering::Relaxed);
                        true
                    }
                });
            return;
        }
        let entry = Arc::new(Entry {
            agent: agent.clone(),
            view: SeqView::new(view),
            verified_at_ms: AtomicU64::new(verified_at.unwrap_or(0)),
            pending_successes: AtomicU64::new(0),
            pending_rejections: AtomicU64::new(0),
            pending_last_success_ms: AtomicU64::new(0),
            touched: AtomicBool::new(false),
            flushed_at_ms: AtomicU64::new(self.clock.now_ms()),
        });
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.entry(agent.clone()).or_insert(entry);
    }

    fn entry(&self, agent: &AgentId) -> Option<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(agent)
            .cloned()
    }

    fn fresh(&self, entry: &Entry, local_now: u64) -> bool {
        let verified = entry.verified_at_ms.load(Ordering::Relaxed);
        verified > 0 && local_now.saturating_sub(verified) < self.max_staleness_ms
    }
}

mod counts;
mod order;
mod seqview;

use order::{Generation, Step};
use seqview::SeqView;

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
}

#[cfg(test)]
mod tests;
