//! The cache's entries: made, moved forward by news, blanked when
//! forgotten (never removed, so that handles on them stay valid), looked up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use super::order::{self, Generation, Step};
use super::seqview::SeqView;
use super::shards::Counts;
use super::{Cache, Entry, View};
use crate::agent_id::AgentId;
use crate::model::CircuitState;

impl Cache {
    pub(super) fn advance(
        &self,
        agent: &AgentId,
        view: View,
        verified_in: Option<u64>,
        accept: Generation,
    ) {
        let entry = match self.entry(agent) {
            Some(entry) => entry,
            None => {
                let made = self.new_entry(agent, Some(view), verified_in);
                let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
                let entry = entries.entry(agent.clone()).or_insert(made);
                if !entry.blank.load(Ordering::Relaxed) {
                    // Ours, or one made meanwhile with news of its own.
                    return;
                }
                Arc::clone(entry)
            }
        };
        entry.view.update(|current| {
            let step = if entry.blank.load(Ordering::Relaxed) {
                // A forgotten entry takes any news, as a new one would.
                entry.blank.store(false, Ordering::Relaxed);
                Step::Replace(view)
            } else {
                order::step(current, view, accept)
            };
            match step {
                Step::Keep => false,
                Step::Distrust => {
                    entry.verified_in.store(0, Ordering::Release);
                    false
                }
                Step::Replace(view) => {
                    *current = view;
                    entry
                        .verified_in
                        .store(verified_in.unwrap_or(0), Ordering::Release);
                    true
                }
            }
        });
    }

    /// A new entry: holding `view`, or blank (acting as absent) without one.
    pub(super) fn new_entry(
        &self,
        agent: &AgentId,
        view: Option<View>,
        verified_in: Option<u64>,
    ) -> Arc<Entry> {
        let blank = view.is_none();
        let view = view.unwrap_or(View {
            epoch: 0,
            generation: 0,
            state: CircuitState::HalfOpen,
            open_until_ms: 0,
            forced_until_ms: None,
            clean: false,
        });
        Arc::new(Entry {
            agent: agent.clone(),
            view: SeqView::new(view),
            verified_in: AtomicU64::new(if blank { 0 } else { verified_in.unwrap_or(0) }),
            blank: AtomicBool::new(blank),
            counts: Counts::new(self.width),
            flushed_at_ms: AtomicU64::new(self.clock.now_ms()),
            hot: AtomicBool::new(false),
        })
    }

    /// The entry of `agent`, unless there is none or it is blank.
    pub(super) fn live(&self, agent: &AgentId) -> Option<Arc<Entry>> {
        self.entry(agent)
            .filter(|entry| !entry.blank.load(Ordering::Relaxed))
    }

    #[inline]
    pub(super) fn entry(&self, agent: &AgentId) -> Option<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(agent)
            .cloned()
    }

    /// Whether the entry was confirmed in the current subscription session.
    #[inline]
    pub(super) fn fresh(&self, entry: &Entry) -> bool {
        entry.verified_in.load(Ordering::Acquire) == self.session.load(Ordering::Acquire)
    }

    /// The current session, to mark an entry confirmed in.
    pub(super) fn now_session(&self) -> u64 {
        self.session.load(Ordering::Acquire)
    }
}

/// Blanks `entry` in place: untrusted, its counts dropped, acting as
/// absent until news arrives.
pub(super) fn blank(entry: &Entry) {
    entry.view.update(|_| {
        entry.blank.store(true, Ordering::Relaxed);
        entry.verified_in.store(0, Ordering::Release);
        false
    });
    entry.counts.discard();
}
