//! The outcomes a pod counts locally, and their batches for the store.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Cache, Entry, EntryRef};
use crate::agent_id::AgentId;
use crate::config::duration_ms;
use crate::model::{Batch, CircuitState};

impl Cache {
    /// Counts a success locally when the circuit is known closed and clean in
    /// `generation`; `false` means it must go to the store. `entry` is the
    /// one [`Cached::Admit`](super::Cached::Admit) handed out, when the
    /// permit was admitted locally.
    #[inline]
    pub(crate) fn count_success(
        &self,
        agent: &AgentId,
        entry: Option<&EntryRef>,
        generation: u64,
    ) -> bool {
        match entry {
            Some(EntryRef(entry)) => self.count_success_in(entry, generation),
            None => self
                .entry(agent)
                .is_some_and(|entry| self.count_success_in(&entry, generation)),
        }
    }

    /// [`count_success`](Self::count_success) in an entry in hand.
    #[inline]
    pub(crate) fn count_success_entry(&self, entry: &EntryRef, generation: u64) -> bool {
        self.count_success_in(&entry.0, generation)
    }

    #[inline]
    fn count_success_in(&self, entry: &Entry, generation: u64) -> bool {
        let Some(local_now) = self.trusted(entry) else {
            return false;
        };
        let closed_clean =
            |state, clean, current| state == CircuitState::Closed && clean && current == generation;
        let counts = match entry.view.quick() {
            Some(q) => closed_clean(q.state, q.clean, q.generation),
            None => {
                let view = entry.view.load();
                closed_clean(view.state, view.clean, view.generation)
            }
        };
        if !counts {
            return false;
        }
        let local_now = local_now.unwrap_or_else(|| self.success_clock.now_ms());
        let store_now = local_now.saturating_add_signed(self.offset_ms.load(Ordering::Relaxed));
        entry.counts.success(store_now);
        true
    }

    /// Takes the locally counted outcomes of every agent that has some.
    pub(crate) fn drain(&self) -> Vec<(AgentId, Batch)> {
        self.collect(|_, has_counts| has_counts)
    }

    /// Takes the locally counted outcomes of `agent`, if it has some: what
    /// a store of this process applies before its next operation on the
    /// agent ([`FeedSink::take_counts`](crate::store::FeedSink::take_counts)).
    pub(crate) fn take(&self, agent: &AgentId) -> Option<Batch> {
        let entry = self.entry(agent)?;
        has_counts(&entry).then(|| self.take_entry(&entry))
    }

    /// The entries whose counts the flusher should send to the store now,
    /// each with its counts (taken): those holding local rejections older
    /// than `flush_interval`, and those holding only successes older than
    /// `success_interval`. Successes on a clean closed circuit change no
    /// decision (the store would only add them to `success_count`), so they
    /// may wait longer; rejections are counted on open circuits, which
    /// change soon. Entries need no refresh by age (see [`Cache`]).
    pub(crate) fn due(
        &self,
        flush_interval: Duration,
        success_interval: Duration,
        window_interval: Duration,
    ) -> Vec<(AgentId, Batch)> {
        let local_now = self.clock.now_ms();
        let (flush_ms, success_ms) = (duration_ms(flush_interval), duration_ms(success_interval));
        let window_ms = duration_ms(window_interval);
        self.collect(|entry, has_counts| {
            if !has_counts {
                return false;
            }
            let age = local_now.saturating_sub(entry.flushed_at_ms.load(Ordering::Relaxed));
            let rejections = entry.counts.pending().1 > 0;
            let every = if rejections {
                flush_ms
            } else if entry.hot.load(Ordering::Relaxed) {
                window_ms.min(success_ms)
            } else {
                success_ms
            };
            age >= every
        })
    }

    /// Takes the counts of the entries `select` picks (given each entry and
    /// whether it holds counts).
    fn collect(&self, select: impl Fn(&Entry, bool) -> bool) -> Vec<(AgentId, Batch)> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .iter()
            .filter(|(_, entry)| !entry.blank.load(Ordering::Relaxed))
            .filter(|(_, entry)| select(entry, has_counts(entry)))
            .map(|(agent, entry)| (agent.clone(), self.take_entry(entry)))
            .collect()
    }

    /// Takes an entry's counts, from every shard, as one batch.
    fn take_entry(&self, entry: &Entry) -> Batch {
        entry
            .flushed_at_ms
            .store(self.clock.now_ms(), Ordering::Relaxed);
        let taken = entry.counts.take();
        let (successes, rejections) = (taken.successes, taken.rejections);
        let last = taken.last_success_ms;
        self.flushed_hits
            .fetch_add(successes + rejections, Ordering::Relaxed);
        Batch {
            generation: entry.view.load().generation,
            successes,
            last_success_ms: (successes > 0 && last > 0).then_some(last),
            rejections,
        }
    }

    /// Puts back the counts of a batch the store did not take.
    pub(crate) fn restore(&self, agent: &AgentId, batch: &Batch) {
        if let Some(entry) = self.entry(agent) {
            entry.counts.restore(
                batch.successes,
                batch.rejections,
                batch.last_success_ms.unwrap_or(0),
            );
        }
    }

    /// Forgets the entry of an agent the store no longer knows (blanks it
    /// in place, so that handles on it stay valid).
    pub(crate) fn forget(&self, agent: &AgentId) {
        if let Some(entry) = self.entry(agent) {
            super::entries::blank(&entry);
        }
    }
}

/// Whether any shard of `entry` holds a count.
fn has_counts(entry: &Entry) -> bool {
    entry.counts.pending() != (0, 0)
}
