//! The fleet heartbeat: one pod, holding a lease, publishes on
//! `PREFIX:heartbeat` every `ping_interval`; every pod's subscription hears
//! it, which confirms the subscription as a ping answer would. A pod pings
//! its own subscription only when it has heard nothing for a while.
//!
//! Why it is enough: pub/sub delivers a connection's messages in order, so
//! a heartbeat heard proves every message published before it was heard
//! too, exactly as a `PING` answer on the same connection does. One
//! publisher for the fleet replaces one ping per pod.
//!
//! ## Behavior
//!
//! - Every tick (half the interval), the beater of each watcher:
//!   - at its first tick after a (re)connection, runs `lua/heartbeat.lua`
//!     once (take the lease if it is free, publish);
//!   - if it holds the lease and its last beat is about one interval old
//!     (three quarters of one, at the tick that comes an interval after it), runs
//!     `lua/heartbeat.lua` (renew the lease, publish): one `EVALSHA`;
//!   - if it has heard nothing on its subscription (no heartbeat, no
//!     message, no ping answer) for 1.5 intervals, runs the script too (to
//!     take the lease over from a holder that died: the lease lasts three
//!     intervals), and pings its own subscription: a ping unanswered
//!     within its bound counts the connection as dead, as before.
//! - Steady state, fleet-wide: one `EVALSHA` per interval (the holder's),
//!   no pings. While the holder is gone, until its lease lapses, the pods
//!   ping (each at most once per tick).
//! - A script refused (an ACL without `EVALSHA`, `SET` on the lease or
//!   `PUBLISH` on the channel) is logged once; that watcher then pings
//!   every interval, as it did before heartbeats. A script that fails
//!   otherwise (a timeout) counts as not holding the lease.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::Script;
use tokio::time::Instant;

use crate::store::redis::Conn;

/// `lua/heartbeat.lua`.
static HEARTBEAT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/heartbeat.lua")));

/// When the subscription last proved alive (a message or a ping answer),
/// shared by the task, which hears, and the beater, which decides.
#[derive(Debug)]
pub(super) struct Heard {
    start: Instant,
    /// Ms after `start`.
    at_ms: AtomicU64,
}

impl Heard {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            at_ms: AtomicU64::new(0),
        })
    }

    /// The subscription proved alive now.
    pub(super) fn now(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.at_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long since it last proved alive.
    fn silence(&self) -> Duration {
        self.start
            .elapsed()
            .saturating_sub(Duration::from_millis(self.at_ms.load(Ordering::Relaxed)))
    }
}

/// What the beater needs to publish the heartbeat.
#[derive(Clone)]
pub(super) struct Beat {
    /// A plain connection (the watcher's).
    pub(super) conn: Conn,
    /// `PREFIX:heartbeat:lease`.
    pub(super) lease: String,
    /// `PREFIX:heartbeat`.
    pub(super) channel: String,
    /// This watcher's id as a lease holder.
    pub(super) holder: String,
}

impl std::fmt::Debug for Beat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Beat")
            .field("lease", &self.lease)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

/// What the beater does on one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    /// Run the heartbeat script.
    pub(super) beat: bool,
    /// Ping the subscription.
    pub(super) ping: bool,
}

/// The beater's state between ticks.
#[derive(Debug)]
pub(super) struct Beater {
    every: Duration,
    /// Holds the lease, as of its last script run.
    holder: bool,
    /// The script was refused: ping every interval instead.
    refused: bool,
    last_beat: Option<Instant>,
    last_ping: Option<Instant>,
}

impl Beater {
    pub(super) fn new(every: Duration, enabled: bool) -> Self {
        Self {
            every,
            holder: false,
            refused: !enabled,
            last_beat: None,
            last_ping: None,
        }
    }

    /// The tick of the beater's loop.
    pub(super) fn tick(&self) -> Duration {
        (self.every / 2).max(Duration::from_millis(1))
    }

    /// What to do now, given how long the subscription has been silent.
    pub(super) fn plan(&self, now: Instant, silence: Duration) -> Plan {
        let since = |at: Option<Instant>| at.map_or(Duration::MAX, |at| now.duration_since(at));
        if self.refused {
            // As before heartbeats: a ping every interval.
            return Plan {
                beat: false,
                ping: since(self.last_ping) >= self.every,
            };
        }
        let silent = silence >= self.every + self.every / 2;
        // Three quarters of an interval, not a whole one: the ticks come
        // every half interval, and a tick a little early must not put the
        // beat off by a whole tick (1.5 intervals, the others' silence).
        let due = since(self.last_beat) >= self.every / 2 + self.every / 4;
        Plan {
            // A new session tries the lease at once: a lone pod (or the
            // first of a fleet) beats from its first tick.
            beat: silent || self.last_beat.is_none() || (self.holder && due),
            ping: silent,
        }
    }

    /// Runs the heartbeat script; notes whether this watcher holds the lease.
    pub(super) async fn beat(&mut self, beat: &mut Beat, limit: Duration) {
        self.last_beat = Some(Instant::now());
        let lease_ms = duration_ms(self.every * 3);
        let mut invocation = HEARTBEAT.key(&beat.lease);
        invocation
            .arg(&beat.holder)
            .arg(lease_ms)
            .arg(&beat.channel);
        let run = invocation.invoke_async::<i64>(&mut beat.conn);
        match tokio::time::timeout(limit, run).await {
            Ok(Ok(held)) => self.holder = held == 1,
            Ok(Err(error))
                if !(error.is_io_error()
                    || error.is_timeout()
                    || error.is_connection_dropped()) =>
            {
                tracing::warn!(%error, "watcher: the heartbeat script was refused; this pod pings its subscription instead");
                (self.holder, self.refused) = (false, true);
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "watcher: heartbeat failed");
                self.holder = false;
            }
            Err(_) => self.holder = false,
        }
    }

    /// Notes a ping sent now.
    pub(super) fn pinged(&mut self) {
        self.last_ping = Some(Instant::now());
    }

    /// Whether this watcher holds the lease, as of its last script run.
    #[cfg(test)]
    fn holds(&self) -> bool {
        self.holder
    }
}

/// How long the subscription has been silent.
pub(super) fn silence(heard: &Heard) -> Duration {
    heard.silence()
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_millis(500);

    #[test]
    fn a_new_session_tries_the_lease_at_its_first_tick() {
        let beater = Beater::new(EVERY, true);
        let plan = beater.plan(Instant::now(), Duration::ZERO);
        assert_eq!(
            plan,
            Plan {
                beat: true,
                ping: false
            }
        );
    }

    #[test]
    fn a_pod_that_hears_the_heartbeat_sends_nothing() {
        let mut beater = Beater::new(EVERY, true);
        let now = Instant::now();
        // It tried the lease, another pod holds it.
        beater.last_beat = Some(now);
        for heard_ago in [0, 100, 500, 749] {
            let plan = beater.plan(now, Duration::from_millis(heard_ago));
            assert_eq!(
                plan,
                Plan {
                    beat: false,
                    ping: false
                },
                "{heard_ago} ms of silence"
            );
        }
        assert!(!beater.holds());
    }

    #[test]
    fn a_silent_subscription_is_pinged_and_the_lease_tried_after_one_and_a_half_intervals() {
        let beater = Beater::new(EVERY, true);
        let plan = beater.plan(Instant::now(), Duration::from_millis(750));
        assert_eq!(
            plan,
            Plan {
                beat: true,
                ping: true
            }
        );
    }

    #[test]
    fn the_holder_beats_once_per_interval() {
        let mut beater = Beater::new(EVERY, true);
        beater.holder = true;
        let start = Instant::now();
        beater.last_beat = Some(start);
        let quiet = Duration::ZERO;
        assert!(!beater.plan(start + EVERY / 2, quiet).beat);
        assert!(
            beater
                .plan(start + EVERY - Duration::from_millis(5), quiet)
                .beat,
            "a tick a little early still beats"
        );
        assert!(beater.plan(start + EVERY, quiet).beat);
        assert!(!beater.plan(start + EVERY, quiet).ping);
    }

    #[test]
    fn a_refused_script_falls_back_to_a_ping_per_interval() {
        let mut beater = Beater::new(EVERY, false);
        let start = Instant::now();
        assert_eq!(
            beater.plan(start, Duration::ZERO),
            Plan {
                beat: false,
                ping: true
            }
        );
        beater.last_ping = Some(start);
        assert!(!beater.plan(start + EVERY / 2, Duration::ZERO).ping);
        assert!(beater.plan(start + EVERY, Duration::ZERO).ping);
    }
}
