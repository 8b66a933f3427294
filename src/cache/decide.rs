//! The cache's decisions: whether an entry may be trusted now, and what a
//! trusted one decides.

use std::sync::Arc;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use super::{Cache, Cached, Entry, EntryRef, Judged};
use crate::agent_id::AgentId;
use crate::model::CircuitState;

impl Cache {
    /// Decides locally where the cache may; counts a local rejection.
    ///
    /// Judges under the map's read lock, so that only an admission takes a
    /// reference to the entry (for its permit): a rejection or an `Ask`
    /// writes no reference count.
    #[inline]
    pub(crate) fn decide(&self, agent: &AgentId) -> Cached {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let decision = match entries.get(agent) {
            None => Cached::Ask,
            Some(entry) => match self.judge(entry) {
                Judged::Admit(generation) => Cached::Admit {
                    generation,
                    entry: EntryRef(Arc::clone(entry)),
                },
                Judged::Reject {
                    state,
                    retry_after_ms,
                } => Cached::Reject {
                    state,
                    retry_after_ms,
                },
                Judged::Ask => Cached::Ask,
            },
        };
        drop(entries);
        if decision == Cached::Ask {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        decision
    }

    /// [`decide`](Self::decide) for an entry in hand: no lookup.
    #[inline]
    pub(crate) fn decide_entry(&self, entry: &EntryRef) -> Judged {
        let judged = self.judge(&entry.0);
        if judged == Judged::Ask {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        judged
    }

    /// The entry of `agent`, made (blank: the store decides until news
    /// arrives) if there is none yet.
    pub(crate) fn entry_ref(&self, agent: &AgentId) -> EntryRef {
        if let Some(entry) = self.entry(agent) {
            return EntryRef(entry);
        }
        let blank = self.new_entry(agent, None, None);
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        EntryRef(Arc::clone(entries.entry(agent.clone()).or_insert(blank)))
    }

    /// Whether `entry` may be decided from now: the local time when one
    /// was needed (the feed is not authoritative), `None` when untrusted.
    #[inline]
    pub(super) fn trusted(&self, entry: &Entry) -> Option<Option<u64>> {
        if !self.fresh(entry) {
            return None;
        }
        if self.authoritative {
            // Always subscribed: no clock to read.
            return Some(None);
        }
        let local_now = self.clock.now_ms();
        (local_now < self.alive_until_ms.load(Ordering::Acquire)).then_some(Some(local_now))
    }

    #[inline]
    pub(super) fn judge(&self, entry: &Entry) -> Judged {
        let Some(local_now) = self.trusted(entry) else {
            return Judged::Ask;
        };
        // The common case, a closed circuit, from one load.
        if let Some(quick) = entry.view.quick()
            && quick.state == CircuitState::Closed
        {
            return Judged::Admit(quick.generation);
        }
        let view = entry.view.load();
        let local_now = local_now.unwrap_or_else(|| self.clock.now_ms());
        let store_now = local_now.saturating_add_signed(self.offset_ms.load(Ordering::Relaxed));
        let force_running = view.forced_until_ms.is_none_or(|until| store_now < until);
        match view.state {
            CircuitState::Closed => Judged::Admit(view.generation),
            CircuitState::ForcedClosed if force_running => Judged::Admit(view.generation),
            CircuitState::Open if store_now < view.open_until_ms => {
                entry.counts.rejection();
                Judged::Reject {
                    state: view.state,
                    retry_after_ms: Some(view.open_until_ms - store_now),
                }
            }
            CircuitState::ForcedOpen if force_running => {
                entry.counts.rejection();
                Judged::Reject {
                    state: view.state,
                    retry_after_ms: view.forced_until_ms.map(|until| until - store_now),
                }
            }
            _ => Judged::Ask,
        }
    }
}
