//! [`SeqView`]: a cache entry's [`View`], read without a lock or an atomic
//! read-modify-write, so a cached decision costs plain loads (a seqlock).

use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::sync::{Mutex, PoisonError};

use super::View;
use crate::model::CircuitState;

/// A [`View`] behind a sequence counter: readers retry while a write is in
/// progress; writers are serialised by a mutex (writes are rare: a snapshot
/// or a message).
#[derive(Debug)]
pub(super) struct SeqView {
    seq: AtomicU64,
    epoch: AtomicU64,
    generation: AtomicU64,
    /// State in the low byte, `clean` in bit 8, "has a force expiry" in bit 9.
    flags: AtomicU64,
    open_until_ms: AtomicU64,
    forced_until_ms: AtomicU64,
    /// Generation and flags in one word (see [`Quick`]), so a closed circuit
    /// is decided with one load; [`NO_QUICK`] when the generation does not
    /// fit in its 48 bits.
    quick: AtomicU64,
    writer: Mutex<()>,
}

/// What a closed-circuit decision needs, read with one atomic load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Quick {
    pub(super) generation: u64,
    pub(super) state: CircuitState,
    pub(super) clean: bool,
}

/// The flags take the low 16 bits of `quick`, the generation the rest.
const QUICK_SHIFT: u32 = 16;
/// `quick` of a generation of 2^48 or more: read the whole view instead.
const NO_QUICK: u64 = u64::MAX;

const CLEAN: u64 = 1 << 8;
const FORCE_EXPIRES: u64 = 1 << 9;

fn state_code(state: CircuitState) -> u64 {
    match state {
        CircuitState::Closed => 0,
        CircuitState::Open => 1,
        CircuitState::HalfOpen => 2,
        CircuitState::ForcedOpen => 3,
        CircuitState::ForcedClosed => 4,
    }
}

fn state_of(code: u64) -> CircuitState {
    match code & 0xff {
        0 => CircuitState::Closed,
        1 => CircuitState::Open,
        2 => CircuitState::HalfOpen,
        3 => CircuitState::ForcedOpen,
        _ => CircuitState::ForcedClosed,
    }
}

impl SeqView {
    pub(super) fn new(view: View) -> Self {
        let this = Self {
            seq: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            flags: AtomicU64::new(0),
            open_until_ms: AtomicU64::new(0),
            forced_until_ms: AtomicU64::new(0),
            quick: AtomicU64::new(NO_QUICK),
            writer: Mutex::new(()),
        };
        this.store_fields(view);
        this
    }

    /// A consistent copy of the view.
    pub(super) fn load(&self) -> View {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let view = self.load_fields();
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return view;
            }
        }
    }

    /// Generation, state and `clean` from one load (no retry loop): a word
    /// written whole, so always consistent with itself. `None` for a
    /// generation too large to pack (then use [`load`](Self::load)).
    #[inline]
    pub(super) fn quick(&self) -> Option<Quick> {
        let word = self.quick.load(Ordering::Acquire);
        (word != NO_QUICK).then(|| Quick {
            generation: word >> QUICK_SHIFT,
            state: state_of(word),
            clean: word & CLEAN != 0,
        })
    }

    /// Changes the view under the writer lock; `change` returns whether it
    /// changed anything worth writing.
    pub(super) fn update(&self, change: impl FnOnce(&mut View) -> bool) {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut view = self.load_fields();
        if !change(&mut view) {
            return;
        }
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.store_fields(view);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    fn load_fields(&self) -> View {
        let flags = self.flags.load(Ordering::Relaxed);
        View {
            epoch: self.epoch.load(Ordering::Relaxed),
            generation: self.generation.load(Ordering::Relaxed),
            state: state_of(flags),
            open_until_ms: self.open_until_ms.load(Ordering::Relaxed),
            forced_until_ms: (flags & FORCE_EXPIRES != 0)
                .then(|| self.forced_until_ms.load(Ordering::Relaxed)),
            clean: flags & CLEAN != 0,
        }
    }

    fn store_fields(&self, view: View) {
        let mut flags = state_code(view.state);
        if view.clean {
            flags |= CLEAN;
        }
        if view.forced_until_ms.is_some() {
            flags |= FORCE_EXPIRES;
        }
        self.epoch.store(view.epoch, Ordering::Relaxed);
        self.generation.store(view.generation, Ordering::Relaxed);
        self.flags.store(flags, Ordering::Relaxed);
        self.open_until_ms
            .store(view.open_until_ms, Ordering::Relaxed);
        self.forced_until_ms
            .store(view.forced_until_ms.unwrap_or(0), Ordering::Relaxed);
        let quick = if view.generation >> (64 - QUICK_SHIFT) == 0 {
            (view.generation << QUICK_SHIFT) | flags
        } else {
            NO_QUICK
        };
        self.quick.store(quick, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_and_flag_round_trips() {
        for state in [
            CircuitState::Closed,
            CircuitState::Open,
            CircuitState::HalfOpen,
            CircuitState::ForcedOpen,
            CircuitState::ForcedClosed,
        ] {
            for (clean, forced_until_ms) in [(true, None), (false, Some(7)), (true, Some(0))] {
                let view = View {
                    epoch: 4,
                    generation: 9,
                    state,
                    open_until_ms: 5,
                    forced_until_ms,
                    clean,
                };
                let seq = SeqView::new(view);
                assert_eq!(seq.load(), view);
                assert_eq!(
                    seq.quick(),
                    Some(Quick {
                        generation: 9,
                        state,
                        clean
                    })
                );
            }
        }
    }

    #[test]
    fn a_generation_too_large_to_pack_has_no_quick_word() {
        let view = View {
            epoch: 1,
            generation: 1 << 48,
            state: CircuitState::Closed,
            open_until_ms: 0,
            forced_until_ms: None,
            clean: true,
        };
        let seq = SeqView::new(view);
        assert_eq!(seq.quick(), None);
        assert_eq!(seq.load(), view);
        seq.update(|v| {
            v.generation = (1 << 48) - 1;
            true
        });
        assert_eq!(seq.quick().map(|q| q.generation), Some((1 << 48) - 1));
    }

    #[test]
    fn readers_never_see_a_torn_view_while_a_writer_runs() {
        let view = SeqView::new(View {
            epoch: 0,
            generation: 0,
            state: CircuitState::Closed,
            open_until_ms: 0,
            forced_until_ms: None,
            clean: true,
        });
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for n in 1..=20_000u64 {
                    view.update(|v| {
                        // Every field is written from the same n.
                        v.generation = n;
                        v.open_until_ms = n;
                        v.forced_until_ms = Some(n);
                        true
                    });
                }
            });
            for _ in 0..200_000 {
                let seen = view.load();
                assert_eq!(seen.open_until_ms, seen.generation);
                assert_eq!(seen.forced_until_ms.unwrap_or(0), seen.generation);
            }
        });
    }
}
