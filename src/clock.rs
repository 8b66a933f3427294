//! Time, injected: a [`Clock`] gives milliseconds since the Unix epoch.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock milliseconds since the Unix epoch.
///
/// The model never reads a clock; stores do, through this trait, so tests can
/// drive time by hand with [`ManualClock`].
pub trait Clock: Debug + Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // Seconds and sub-second millis, not `as_millis()`: this runs on every
        // cached decision, and a u128 division costs more than the clock read.
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
            d.as_secs().saturating_mul(1000) + u64::from(d.subsec_millis())
        })
    }
}

/// The system's wall clock read through the kernel's coarse monotonic clock:
/// a few nanoseconds a read instead of a few tens, at the price of the
/// scheduler tick's resolution (1 to 4 ms), always behind, never ahead.
///
/// The local cache decides with it: a cached open circuit may be rejected
/// locally up to one tick past its `open_until` before the store is asked;
/// staleness windows are off by at most a tick. The wall time is anchored
/// once; drift against the wall clock is absorbed by the store-time offset the
/// cache measures on every reply.
#[derive(Debug, Clone, Copy)]
pub struct CoarseClock {
    anchor_wall_ms: u64,
    anchor: coarsetime::Instant,
}

impl CoarseClock {
    /// A coarse clock anchored to the wall clock now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            anchor_wall_ms: SystemClock.now_ms(),
            anchor: coarsetime::Instant::now_without_cache_update(),
        }
    }
}

impl Default for CoarseClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for CoarseClock {
    fn now_ms(&self) -> u64 {
        // Not `Instant::now()`: that also stores the reading in a global
        // (coarsetime's `recent()`), a cache line every thread would write
        // on every cached decision.
        let elapsed = coarsetime::Instant::now_without_cache_update().duration_since(self.anchor);
        self.anchor_wall_ms.saturating_add(elapsed.as_millis())
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `start_ms`.
    #[must_use]
    pub fn new(start_ms: u64) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(start_ms)),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.now
            .fetch_add(crate::config::duration_ms(d), Ordering::SeqCst);
    }

    /// Sets the clock to `ms`.
    pub fn set(&self, ms: u64) {
        self.now.store(ms, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    /// A clock at 2023-11-14T22:13:20Z (1.7e12 ms), a realistic non-zero time.
    fn default() -> Self {
        Self::new(1_700_000_000_000)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// Milliseconds since the epoch as RFC 3339 / ISO-8601 UTC (past the year
/// 9999, the count of milliseconds, said so).
#[must_use]
pub fn iso8601(ms: u64) -> String {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms after the epoch"))
}
