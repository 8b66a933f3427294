//! [`Counts`]: one entry's locally counted outcomes, split so that threads
//! counting on the same agent write no common cache line, and mostly with
//! no atomic read-modify-write.
//!
//! Each thread holds a slot number for its life (given back at its exit,
//! for the next thread). A thread whose slot is below the width writes its
//! own shard with plain loads and stores (it is the shard's only writer);
//! any other thread adds to the last, shared shard atomically. Counters
//! only grow; whoever takes the counts (the flusher, the embedded store)
//! keeps the part taken per shard and takes the difference.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

/// One shard, alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Shard {
    successes: AtomicU64,
    rejections: AtomicU64,
    /// Store-time estimate of the last success counted here (0: none).
    last_success_ms: AtomicU64,
    /// The part of `successes` / `rejections` already taken.
    taken_successes: AtomicU64,
    taken_rejections: AtomicU64,
}

/// Counts handed back ([`Counts::restore`]) after a failed flush.
#[derive(Debug, Default)]
struct Restored {
    successes: AtomicU64,
    rejections: AtomicU64,
    last_success_ms: AtomicU64,
}

/// An entry's local counts; the shards are made at the first count.
#[derive(Debug)]
pub(super) struct Counts {
    /// `width` owned shards, then the shared one.
    shards: OnceLock<Box<[Shard]>>,
    width: usize,
    restored: Restored,
}

/// What [`Counts::take`] took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Taken {
    pub(super) successes: u64,
    pub(super) rejections: u64,
    /// The latest success time among the shards (0: none).
    pub(super) last_success_ms: u64,
}

/// Owned shards per entry: the parallelism plus two (the main thread, a
/// spare), at most 16. An entry that counts holds that many plus one
/// 64-byte shards.
pub(super) fn width() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .saturating_add(2)
        .min(16)
}

/// Slot numbers given back by threads that ended.
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A thread's slot number, given back when the thread ends.
struct Slot(usize);

impl Slot {
    fn take() -> Self {
        let free = FREE.lock().unwrap_or_else(PoisonError::into_inner).pop();
        Self(free.unwrap_or_else(|| NEXT.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The mutex orders this thread's last counts before the next
        // owner's first.
        FREE.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.0);
    }
}

thread_local! {
    static SLOT: Slot = Slot::take();
}

/// The calling thread's slot (`usize::MAX` while the thread is exiting:
/// the shared shard then).
#[inline]
fn slot() -> usize {
    SLOT.try_with(|slot| slot.0).unwrap_or(usize::MAX)
}

/// Adds one to a counter the calling thread alone writes.
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Release);
}

impl Counts {
    pub(super) fn new(width: usize) -> Self {
        Self {
            shards: OnceLock::new(),
            width,
            restored: Restored::default(),
        }
    }

    #[inline]
    fn shards(&self) -> &[Shard] {
        self.shards
            .get_or_init(|| (0..=self.width).map(|_| Shard::default()).collect())
    }

    /// Counts a success at store time `at_ms`.
    #[inline]
    pub(super) fn success(&self, at_ms: u64) {
        let shards = self.shards();
        let slot = slot();
        let shard = if slot < self.width {
            bump(&shards[slot].successes);
            &shards[slot]
        } else {
            let shared = &shards[self.width];
            shared.successes.fetch_add(1, Ordering::AcqRel);
            shared
        };
        // A race on the shared shard may keep a time a few ms older, which
        // the store's own max then absorbs.
        if shard.last_success_ms.load(Ordering::Relaxed) < at_ms {
            shard.last_success_ms.store(at_ms, Ordering::Relaxed);
        }
    }

    /// Counts a local rejection.
    pub(super) fn rejection(&self) {
        let shards = self.shards();
        let slot = slot();
        if slot < self.width {
            bump(&shards[slot].rejections);
        } else {
            shards[self.width].rejections.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Successes and rejections counted and not taken yet.
    pub(super) fn pending(&self) -> (u64, u64) {
        let mut pending = (
            self.restored.successes.load(Ordering::Acquire),
            self.restored.rejections.load(Ordering::Acquire),
        );
        for shard in self.shards.get().map_or(&[][..], |s| &s[..]) {
            let left = |counter: &AtomicU64, taken: &AtomicU64| {
                let now = counter.load(Ordering::Acquire);
                now.saturating_sub(taken.load(Ordering::Acquire))
            };
            pending.0 += left(&shard.successes, &shard.taken_successes);
            pending.1 += left(&shard.rejections, &shard.taken_rejections);
        }
        pending
    }

    /// Takes every count not taken yet. Concurrent takers split the counts
    /// between them, never taking one twice.
    pub(super) fn take(&self) -> Taken {
        let mut taken = Taken {
            successes: self.restored.successes.swap(0, Ordering::AcqRel),
            rejections: self.restored.rejections.swap(0, Ordering::AcqRel),
            last_success_ms: self.restored.last_success_ms.swap(0, Ordering::AcqRel),
        };
        for shard in self.shards.get().map_or(&[][..], |s| &s[..]) {
            taken.successes += take(&shard.successes, &shard.taken_successes);
            taken.rejections += take(&shard.rejections, &shard.taken_rejections);
            taken.last_success_ms = taken
                .last_success_ms
                .max(shard.last_success_ms.load(Ordering::Acquire));
        }
        taken
    }

    /// Hands back counts the store did not take.
    pub(super) fn restore(&self, successes: u64, rejections: u64, last_success_ms: u64) {
        self.restored
            .successes
            .fetch_add(successes, Ordering::AcqRel);
        self.restored
            .rejections
            .fetch_add(rejections, Ordering::AcqRel);
        self.restored
            .last_success_ms
            .fetch_max(last_success_ms, Ordering::AcqRel);
    }

    /// Drops every count not taken yet.
    pub(super) fn discard(&self) {
        let _ = self.take();
    }
}

/// Takes the growth of `counter` since the part `taken` records.
fn take(counter: &AtomicU64, taken: &AtomicU64) -> u64 {
    let now = counter.load(Ordering::Acquire);
    let before = taken.fetch_max(now, Ordering::AcqRel);
    now.saturating_sub(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_taken_once_and_restored_counts_come_back() {
        let counts = Counts::new(width());
        assert_eq!(counts.take(), Taken::default());
        counts.success(5);
        counts.success(7);
        counts.rejection();
        assert_eq!(counts.pending(), (2, 1));
        let taken = counts.take();
        assert_eq!(
            taken,
            Taken {
                successes: 2,
                rejections: 1,
                last_success_ms: 7
            }
        );
        assert_eq!(counts.pending(), (0, 0));
        counts.restore(2, 1, 7);
        assert_eq!(counts.pending(), (2, 1));
        assert_eq!(counts.take(), taken);
        counts.success(9);
        counts.discard();
        assert_eq!(counts.pending(), (0, 0));
    }

    #[test]
    fn threads_past_the_width_share_one_shard_and_lose_nothing() {
        let counts = Counts::new(1);
        std::thread::scope(|scope| {
            for _ in 0..6 {
                scope.spawn(|| {
                    for n in 0..5_000 {
                        counts.success(n);
                        counts.rejection();
                    }
                });
            }
        });
        let taken = counts.take();
        assert_eq!((taken.successes, taken.rejections), (30_000, 30_000));
    }
}
