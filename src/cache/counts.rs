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
    /// one [`Cached::Admit`] handed out, when the permit was admitted locally.
    pub(crate) fn count_success(
        &self,
        agent: &AgentId,
        entry: Option<&EntryRef>,
        generation: u64,
    ) -> bool {
        let local_now = self.clock.now_ms();
        if local_now >= self.alive_until_ms.load(Ordering::Acquire) {
            return false;
        }
        let looked_up;
        let entry = match entry {
            Some(EntryRef(entry)) => entry,
            None => match self.entry(agent) {
                Some(found) => {
                    looked_up = found;
                    &looked_up
                }
                None => return false,
            },
        };
        if !self.fresh(entry, local_now) {
            return false;
        }
        let view = entry.view.load();
        if view.state != CircuitState::Closed || !view.clean || view.generation != generation {
            return false;
        }
        let store_now = local_now.saturating_add_signed(self.offset_ms.load(Ordering::Relaxed));
        entry.pending_successes.fetch_add(1, Ordering::Relaxed);
        // A plain store, not `fetch_max`: a race may keep a time a few ms
        // older, which the store's own max then absorbs.
        if entry.pending_last_success_ms.load(Ordering::Relaxed) < store_now {
            entry
                .pending_last_success_ms
                .store(store_now, Ordering::Relaxed);
        }
        true
    }

    /// Takes the locally counted outcomes of every agent that has some.
    pub(crate) fn drain(&self) -> Vec<(AgentId, Batch)> {
        self.collect(|_, has_counts| has_counts)
    }

    /// The entries the flusher should send to the store on this tick, each
    /// with its locally counted outcomes (taken): those in use that would go
    /// stale before the next tick (the store's answer refreshes them), and
    /// those holding counts older than `flush_interval`.
    pub(crate) fn due(&self, tick: Duration, flush_interval: Duration) -> Vec<(AgentId, Batch)> {
        let local_now = self.clock.now_ms();
        let (tick_ms, flush_ms) = (duration_ms(tick), duration_ms(flush_interval));
        self.collect(|entry, has_counts| {
            let age = local_now.saturating_sub(entry.verified_at_ms.load(Ordering::Relaxed));
            let in_use = entry.touched.swap(false, Ordering::Relaxed);
            let aging = in_use && age.saturating_add(tick_ms) >= self.max_staleness_ms;
            let flushed = entry.flushed_at_ms.load(Ordering::Relaxed);
            let counts_due = has_counts && local_now.saturating_sub(flushed) >= flush_ms;
            aging || counts_due
        })
    }

    /// Takes the counts of the entries `select` picks (given each entry and
    /// whether it holds counts).
    fn collect(&self, select: impl Fn(&Entry, bool) -> bool) -> Vec<(AgentId, Batch)> {
        let local_now = self.clock.now_ms();
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .iter()
            .filter_map(|(agent, entry)| {
                let has_counts = entry.pending_successes.load(Ordering::Relaxed) > 0
                    || entry.pending_rejections.load(Ordering::Relaxed) > 0;
                if !select(entry, has_counts) {
                    return None;
                }
                entry.flushed_at_ms.store(local_now, Ordering::Relaxed);
                let successes = entry.pending_successes.swap(0, Ordering::Relaxed);
                let rejections = entry.pending_rejections.swap(0, Ordering::Relaxed);
                self.flushed_hits
                    .fetch_add(successes + rejections, Ordering::Relaxed);
                let last = entry.pending_last_success_ms.swap(0, Ordering::Relaxed);
                let generation = entry.view.load().generation;
                let batch = Batch {
                    generation,
                    successes,
                    last_success_ms: (last > 0).then_some(last),
                    rejections,
                };
                Some((agent.clone(), batch))
            })
            .collect()
    }

    /// Puts back the counts of a batch the store did not take.
    pub(crate) fn restore(&self, agent: &AgentId, batch: &Batch) {
        if let Some(entry) = self.entry(agent) {
            entry
                .pending_successes
                .fetch_add(batch.successes, Ordering::Relaxed);
            entry
                .pending_rejections
                .fetch_add(batch.rejections, Ordering::Relaxed);
            if let Some(at) = batch.last_success_ms {
                entry
                    .pending_last_success_ms
                    .fetch_max(at, Ordering::Relaxed);
            }
        }
    }

    /// Drops the entry of an agent the store no longer knows.
    pub(crate) fn forget(&self, agent: &AgentId) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(agent);
    }
}
