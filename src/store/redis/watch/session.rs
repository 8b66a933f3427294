//! One connection's worth of watcher state, and the small tools of the task:
//! the pinger, bounded Redis calls, reconnection delays and the rate-limited
//! complaints about malformed messages.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redis::Value;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::heartbeat::{Beat, Beater, Heard, silence};
use super::message::{MessageError, Shown};
use crate::store::feed::FeedStats as Shared;

/// At most one warning about malformed messages per this much time; the
/// ones in between are counted and reported with the next warning.
const COMPLAINT_INTERVAL: Duration = Duration::from_secs(1);

/// Why a connection attempt failed or a live connection was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    /// What was being done: `connect`, `SUBSCRIBE`, `PING`, `read`, ...
    step: &'static str,
    detail: String,
}

impl Failure {
    pub(super) fn new(step: &'static str, detail: impl Into<String>) -> Self {
        Self {
            step,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.detail)
    }
}

/// Runs a Redis call with a deadline.
pub(super) async fn bounded<T>(
    limit: Duration,
    step: &'static str,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Failure::new(step, error.to_string())),
        Err(_) => Err(Failure::new(step, format!("no answer within {limit:?}"))),
    }
}

/// What the pinger reports.
#[derive(Debug)]
pub(super) enum Ping {
    /// A ping was answered: the connection is alive.
    Pong,
    /// A ping failed or went unanswered: the connection is dead. The pinger
    /// has stopped.
    Dead(Failure),
}

/// A subscribed pub/sub connection: its messages, and the reports of the
/// task that pings it (and beats the fleet heartbeat, `heartbeat.rs`).
/// Dropping it stops that task and closes the connection.
pub(super) struct Session {
    pub(super) messages: PubSubStream,
    pub(super) pings: mpsc::Receiver<Ping>,
    /// When the subscription last proved alive: the task notes each
    /// message and ping answer here.
    pub(super) heard: Arc<Heard>,
    pinger: JoinHandle<()>,
}

impl Session {
    /// Starts the beater: the fleet heartbeat through `beat` (when given)
    /// every `every`, and pings through `sink` when the subscription has
    /// been silent (see `heartbeat.rs`), each answer awaited at most `limit`.
    pub(super) fn new(
        messages: PubSubStream,
        mut sink: PubSubSink,
        every: Duration,
        limit: Duration,
        mut beat: Option<Beat>,
    ) -> Self {
        let (reports, pings) = mpsc::channel(4);
        let heard = Heard::new();
        let silent = Arc::clone(&heard);
        let pinger = tokio::spawn(async move {
            let mut beater = Beater::new(every, beat.is_some());
            let tick = beater.tick();
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let plan = beater.plan(tokio::time::Instant::now(), silence(&silent));
                if plan.ping {
                    beater.pinged();
                }
                let ping = async {
                    if plan.ping {
                        Some(bounded(limit, "PING", sink.ping::<Value>()).await)
                    } else {
                        None
                    }
                };
                let beating = async {
                    if let (true, Some(beat)) = (plan.beat, beat.as_mut()) {
                        beater.beat(beat, limit).await;
                    }
                };
                let (answer, ()) = tokio::join!(ping, beating);
                match answer {
                    // A full channel already holds news that the connection lives.
                    Some(Ok(_)) => {
                        let _ = reports.try_send(Ping::Pong);
                    }
                    Some(Err(failure)) => {
                        let _ = reports.send(Ping::Dead(failure)).await;
                        return;
                    }
                    None => {}
                }
            }
        });
        Self {
            messages,
            pings,
            heard,
            pinger,
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.pinger.abort();
    }
}

/// The delay before the next connection attempt after `failures`
/// consecutive failed ones: `min x 2^failures`, capped at `max`, then drawn
/// uniformly from its upper half.
pub(super) fn backoff(min: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures).unwrap_or(u32::MAX);
    jitter(min.saturating_mul(factor).min(max))
}

/// A duration drawn uniformly from `[d / 2, d]`.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    let span = u64::try_from((d - half).as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(random() % span.saturating_add(1))
}

/// A random number. `RandomState` is freshly keyed on every construction:
/// random enough to spread a fleet's reconnections and its subscriptions
/// over a cluster's nodes, with no extra dependency.
pub(super) fn random() -> u64 {
    RandomState::new().hash_one(Instant::now())
}

/// Counts malformed messages and warns about them, at most once per
/// [`COMPLAINT_INTERVAL`].
#[derive(Debug)]
pub(super) struct Complaints {
    shared: Arc<Shared>,
    last: Option<Instant>,
    suppressed: u64,
}

impl Complaints {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            last: None,
            suppressed: 0,
        }
    }

    /// Counts a skipped message from `source` (a channel or the stream).
    pub(super) fn skip(&mut self, source: &str, payload: &[u8], error: &MessageError) {
        self.shared.malformed.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < COMPLAINT_INTERVAL)
        {
            self.suppressed = self.suppressed.saturating_add(1);
            return;
        }
        tracing::warn!(
            channel = source,
            payload = %Shown(payload),
            %error,
            similar_not_logged = self.suppressed,
            "watcher: skipped a malformed message"
        );
        self.last = Some(now);
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let (min, max) = (Duration::from_millis(50), Duration::from_secs(2));
        for failures in 0..40 {
            let nominal = (min * 2u32.saturating_pow(failures.min(31))).min(max);
            let d = backoff(min, max, failures);
            assert!(
                d >= nominal / 2 && d <= nominal,
                "{failures}: {d:?} vs {nominal:?}"
            );
        }
        assert_eq!(backoff(Duration::ZERO, Duration::ZERO, 3), Duration::ZERO);
    }

    #[test]
    fn jitter_varies() {
        let d = Duration::from_secs(1);
        let draws: std::collections::HashSet<_> = (0..20).map(|_| jitter(d)).collect();
        assert!(draws.len() > 1);
    }
}
