//! The window of the fleet's calls the rate policies and the quorum read
//! (DESIGN.md section 2, "Trip policies").
//!
//! ## Behavior
//!
//! - The window is [`WINDOW_BUCKETS`] buckets of store time, numbered
//!   `floor(now_ms / bucket_ms)`: the current one and the nine before it.
//!   Any other bucket (aged, or ahead after the clock went back) counts
//!   nothing, and is dropped when the window is next written.
//! - A bucket counts calls (successes and failures: a neutral outcome is no
//!   call), failures and slow calls. Only outcomes counted on a closed
//!   circuit enter it; a transition to closed empties it.
//! - The reporters are the pods that reported a failure or a slow call, each
//!   with the last bucket it did: the `min_reporting_pods` most recent are
//!   kept (by bucket, then pod id), which is exactly enough to tell whether
//!   that many reported within the window.

use serde::{Deserialize, Serialize};

use crate::config::{BreakerConfig, WINDOW_BUCKETS};

/// One bucket of the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// `floor(start_ms / bucket_ms)`.
    pub index: u64,
    /// Calls that ended in a success or a failure.
    pub calls: u64,
    /// Of which failures.
    pub failures: u64,
    /// Of which slow (a slow call may be a success or a failure).
    pub slow: u64,
}

/// A pod that reported a failure or a slow call, and the last bucket it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reporter {
    /// The pod's reporter id ([`reporter_id`]).
    pub pod: String,
    /// The bucket of its last failure or slow call.
    pub bucket: u64,
}

/// The window of one agent: its buckets and the pods that reported trouble.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Buckets with counts, ordered by index.
    pub buckets: Vec<Bucket>,
    /// The most recent reporters, ordered by bucket (latest first), then pod id.
    pub reporters: Vec<Reporter>,
}

/// The window's sums at one time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCounts {
    /// Calls in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub failures: u64,
    /// Slow calls in the window.
    pub slow: u64,
    /// Distinct pods that reported a failure or a slow call in the window
    /// (counted up to `min_reporting_pods`, the most the store keeps).
    pub reporting_pods: u64,
}

impl WindowCounts {
    /// Failed share of the calls, 0 with no calls.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn failure_rate(&self) -> f64 {
        ratio(self.failures, self.calls)
    }

    /// Slow share of the calls, 0 with no calls.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn slow_call_rate(&self) -> f64 {
        ratio(self.slow, self.calls)
    }
}

#[allow(clippy::cast_precision_loss)]
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The bucket `now_ms` falls in.
#[must_use]
pub fn bucket_index(config: &BreakerConfig, now_ms: u64) -> u64 {
    now_ms / config.bucket_ms()
}

/// Whether bucket `index` is in the window at bucket `current`.
fn in_window(index: u64, current: u64) -> bool {
    index <= current && current - index < WINDOW_BUCKETS
}

impl Window {
    /// Whether nothing is counted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty() && self.reporters.is_empty()
    }

    /// The sums at `now_ms`.
    #[must_use]
    pub fn counts(&self, config: &BreakerConfig, now_ms: u64) -> WindowCounts {
        let current = bucket_index(config, now_ms);
        let mut sums = WindowCounts::default();
        for b in self.buckets.iter().filter(|b| in_window(b.index, current)) {
            sums.calls += b.calls;
            sums.failures += b.failures;
            sums.slow += b.slow;
        }
        sums.reporting_pods = self
            .reporters
            .iter()
            .filter(|r| in_window(r.bucket, current))
            .count() as u64;
        sums
    }

    /// The current bucket, made if needed, after dropping every bucket
    /// outside the window.
    fn current(&mut self, config: &BreakerConfig, now_ms: u64) -> &mut Bucket {
        let index = bucket_index(config, now_ms);
        self.buckets.retain(|b| in_window(b.index, index));
        if self.buckets.last().is_none_or(|b| b.index != index) {
            self.buckets.push(Bucket {
                index,
                ..Bucket::default()
            });
        }
        self.buckets.last_mut().expect("just made")
    }

    /// Counts `calls` calls, `failures` and `slow` of them failed or slow,
    /// in the current bucket; a failure or a slow call makes `pod` a
    /// reporter (when a quorum above 1 needs reporters).
    pub fn count(
        &mut self,
        config: &BreakerConfig,
        now_ms: u64,
        calls: u64,
        failures: u64,
        slow: u64,
        pod: &str,
    ) {
        let bucket = self.current(config, now_ms);
        bucket.calls += calls;
        bucket.failures += failures;
        bucket.slow += slow;
        let index = bucket.index;
        if failures + slow > 0 && config.min_reporting_pods > 1 {
            self.reporters.retain(|r| r.pod != pod);
            self.reporters.push(Reporter {
                pod: pod.to_owned(),
                bucket: index,
            });
            self.reporters
                .sort_by(|a, b| b.bucket.cmp(&a.bucket).then_with(|| a.pod.cmp(&b.pod)));
            self.reporters.truncate(config.min_reporting_pods as usize);
        }
    }

    /// Forgets every count (a transition to closed).
    pub fn clear(&mut self) {
        self.buckets.clear();
        self.reporters.clear();
    }
}

/// Most bytes of a reporter id.
pub const MAX_REPORTER_BYTES: usize = 64;

/// A pod's id as the window stores it: `[A-Za-z0-9._@/-]`, every other
/// byte as `_`, at most 64 bytes, `-` for an empty id.
#[must_use]
pub fn reporter_id(instance_id: &str) -> String {
    let id: String = instance_id
        .chars()
        .take(MAX_REPORTER_BYTES)
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || "._@/-".contains(ch) {
                ch
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() { "-".to_owned() } else { id }
}
