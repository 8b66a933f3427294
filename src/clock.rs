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
/// The local cache decides with it where no [`TickingClock`] can be
/// started: a cached open circuit may be rejected locally up to one tick
/// past its `open_until` before the store is asked; staleness windows are
/// off by at most a tick. The wall time is anchored
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

/// The system's wall clock as one shared word a background thread moves on
/// every millisecond: a read is one atomic load (a nanosecond, against a
/// few for [`CoarseClock`] and a few tens for [`SystemClock`]).
///
/// The local cache decides with it, twice per cached call (the trust check
/// of the acquire, the time of the success); with the coarse clock those
/// two reads were the largest part of a cached call through a handle.
///
/// ## Behavior
///
/// - One thread per process (`fleet-breaker-clock`) moves the word for
///   every `TickingClock` alive; it starts with the first and ends within a
///   millisecond of the last one's drop.
/// - The word is read from the monotonic clock, anchored once to the wall
///   clock, so it never runs ahead and never moves back; it is behind by up
///   to a tick plus the thread's scheduling delay (1 ms, more on a machine
///   whose cores are all busy), as [`CoarseClock`] is behind by up to the
///   scheduler's tick. Drift against the wall clock is absorbed by the
///   store-time offset the cache measures on every reply.
/// - The thread runs whatever the async runtime does: a runtime starved by
///   a task that never yields still sees time pass, so a silent
///   subscription still stops being trusted within `max_staleness`.
/// - [`TickingClock::new`] returns `None` when the thread cannot be
///   started (the system refuses a thread); use [`CoarseClock`] then.
#[derive(Debug, Clone)]
pub struct TickingClock {
    word: Arc<Ticks>,
}

/// The shared word, and the time it counts from.
#[derive(Debug)]
struct Ticks {
    now_ms: AtomicU64,
    anchor_wall_ms: u64,
    anchor: std::time::Instant,
}

/// The word of the running thread, if one runs.
static TICKS: std::sync::Mutex<std::sync::Weak<Ticks>> =
    std::sync::Mutex::new(std::sync::Weak::new());

/// How often the thread moves the word.
const TICK: Duration = Duration::from_millis(1);

impl TickingClock {
    /// A clock on the process's ticking thread, started if none runs;
    /// `None` when it cannot be started.
    #[must_use]
    pub fn new() -> Option<Self> {
        let mut running = TICKS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(word) = running.upgrade() {
            return Some(Self { word });
        }
        let (word, _thread) = Ticks::start()?;
        *running = Arc::downgrade(&word);
        Some(Self { word })
    }
}

impl Ticks {
    /// The wall time now, from the monotonic clock.
    fn read(&self) -> u64 {
        self.anchor_wall_ms
            .saturating_add(crate::config::duration_ms(self.anchor.elapsed()))
    }

    /// A new word, and the thread that moves it until the word is dropped.
    fn start() -> Option<(Arc<Self>, std::thread::JoinHandle<()>)> {
        let anchor = std::time::Instant::now();
        let anchor_wall_ms = SystemClock.now_ms();
        let word = Arc::new(Self {
            now_ms: AtomicU64::new(anchor_wall_ms),
            anchor_wall_ms,
            anchor,
        });
        let ticked = Arc::downgrade(&word);
        let thread = std::thread::Builder::new()
            .name("fleet-breaker-clock".to_owned())
            .spawn(move || tick(&ticked))
            .ok()?;
        Some((word, thread))
    }
}

/// Moves the word every [`TICK`] while a clock holds it.
fn tick(word: &std::sync::Weak<Ticks>) {
    loop {
        std::thread::sleep(TICK);
        let Some(word) = word.upgrade() else { return };
        word.now_ms.store(word.read(), Ordering::Relaxed);
    }
}

/// A clock read on the cache's hot path: the ticking word read in place
/// (a load, no call through a `dyn Clock`), or any other clock.
#[derive(Debug, Clone)]
pub(crate) enum HotClock {
    /// The process's ticking word.
    Ticking(TickingClock),
    /// Any other clock (a test clock, the coarse one).
    Other(Arc<dyn Clock>),
}

impl HotClock {
    /// Milliseconds since the Unix epoch, as the clock tells them.
    #[inline]
    pub(crate) fn now_ms(&self) -> u64 {
        match self {
            Self::Ticking(clock) => clock.word.now_ms.load(Ordering::Relaxed),
            Self::Other(clock) => clock.now_ms(),
        }
    }
}

impl From<Arc<dyn Clock>> for HotClock {
    fn from(clock: Arc<dyn Clock>) -> Self {
        Self::Other(clock)
    }
}

impl Clock for TickingClock {
    fn now_ms(&self) -> u64 {
        self.word.now_ms.load(Ordering::Relaxed)
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

/// Milliseconds since the epoch as RFC 3339 / ISO-8601 UTC, always with
/// three digits of milliseconds (`2024-11-27T04:00:00.080Z`, the shape of
/// JavaScript's `toISOString`); past the year 9999, the count of
/// milliseconds, said so.
#[must_use]
pub fn iso8601(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => format!("{ms} ms after the epoch"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::{Clock, SystemClock, TickingClock, Ticks};

    /// Every timestamp has the same shape, milliseconds always three digits
    /// (as JavaScript's `toISOString`), so that a reader parsing one fixed
    /// format (`%Y-%m-%dT%H:%M:%S.%fZ`) reads every one: RFC 3339's shortest
    /// form wrote 80 ms as `.08` and a whole second with no fraction.
    #[test]
    fn timestamps_always_carry_three_digits_of_milliseconds() {
        use super::iso8601;
        assert_eq!(iso8601(1_732_680_000_123), "2024-11-27T04:00:00.123Z");
        assert_eq!(iso8601(1_732_680_000_080), "2024-11-27T04:00:00.080Z");
        assert_eq!(iso8601(1_732_680_000_000), "2024-11-27T04:00:00.000Z");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            iso8601(253_402_300_800_000),
            "253402300800000 ms after the epoch"
        );
    }

    #[test]
    fn the_ticking_clock_follows_the_wall_clock_never_ahead() {
        let clock = TickingClock::new().expect("a thread");
        let first = clock.now_ms();
        assert!(first <= SystemClock.now_ms(), "ahead of the wall clock");
        let deadline = Instant::now() + Duration::from_secs(5);
        while clock.now_ms() < first + 20 {
            assert!(Instant::now() < deadline, "the word did not move");
            std::thread::yield_now();
        }
        let (ticked, wall) = (clock.now_ms(), SystemClock.now_ms());
        assert!(ticked <= wall, "ahead: {ticked} > {wall}");
        assert!(wall - ticked < 1000, "a second behind: {ticked} < {wall}");
    }

    #[test]
    fn every_ticking_clock_reads_the_one_word_of_the_process() {
        let (a, b) = (TickingClock::new().unwrap(), TickingClock::new().unwrap());
        assert!(Arc::ptr_eq(&a.word, &b.word));
    }

    #[test]
    fn the_thread_ends_when_its_word_is_dropped() {
        let (word, thread) = Ticks::start().expect("a thread");
        drop(word);
        let (ended, joined) = mpsc::channel();
        std::thread::spawn(move || ended.send(thread.join().is_ok()));
        assert_eq!(joined.recv_timeout(Duration::from_secs(5)), Ok(true));
    }
}
