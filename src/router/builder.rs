//! [`FailoverRouterBuilder`]: the router's settings, validated by `build`.

use std::time::Duration;

use super::classify::DefaultClassifier;
use super::error::RouterConfigError;
use super::{FailoverRouter, Settings};
use crate::breaker::CircuitBreaker;
use crate::store::DEFAULT_FAILURES_CAP;

/// The default number of calls per task.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// The default interval between flushes of the routing-decision counter.
pub const DEFAULT_EVENTS_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Largest accepted `failures_cap`.
const MAX_FAILURES_CAP: usize = 1_000_000;

/// Builder of a [`FailoverRouter`]; see [`FailoverRouter::builder`].
///
/// `C` is the [classifier](super::Classify) type.
#[derive(Debug, Clone)]
#[must_use]
pub struct FailoverRouterBuilder<C = DefaultClassifier> {
    breaker: CircuitBreaker,
    settings: Settings,
    classifier: C,
}

impl FailoverRouterBuilder {
    pub(super) fn new(breaker: CircuitBreaker) -> Self {
        Self {
            breaker,
            settings: Settings::default(),
            classifier: DefaultClassifier,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_retries: DEFAULT_MAX_RETRIES,
            attempt_timeout: None,
            slow_call_threshold: None,
            panic_mode: false,
            failures_cap: DEFAULT_FAILURES_CAP,
            flush_interval: DEFAULT_EVENTS_FLUSH_INTERVAL,
        }
    }
}

impl<C> FailoverRouterBuilder<C> {
    /// Most calls made per task (default 3; at least 1). Rejected agents are
    /// skipped without counting.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.settings.max_retries = n;
        self
    }

    /// Bound on each call (default none; at least 1 ms). A call past it is
    /// abandoned and counts as a failure.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.settings.attempt_timeout = Some(timeout);
        self
    }

    /// The classifier of call results (default: `Ok` success, `Err` failure).
    pub fn classifier<C2>(self, classifier: C2) -> FailoverRouterBuilder<C2> {
        FailoverRouterBuilder {
            breaker: self.breaker,
            settings: self.settings,
            classifier,
        }
    }

    /// A success that took longer than this counts as a failure (default
    /// none; at least 1 ms, and below `attempt_timeout` when both are set).
    /// The value is still returned.
    pub fn slow_call_threshold(mut self, threshold: Duration) -> Self {
        self.settings.slow_call_threshold = Some(threshold);
        self
    }

    /// Panic mode (default off): when every agent of a list is rejected,
    /// call the one whose circuit reopens soonest, once. See
    /// [`FailoverRouter`]'s behavior section for why, and the risk.
    pub fn panic_mode(mut self, on: bool) -> Self {
        self.settings.panic_mode = on;
        self
    }

    /// About how many recent failures the fleet keeps (default 1,000; 1 to
    /// 1,000,000).
    pub fn failures_cap(mut self, cap: usize) -> Self {
        self.settings.failures_cap = cap;
        self
    }

    /// How often this pod adds its routing decisions to the fleet-wide
    /// counter (default 1 s; 1 ms to 1 h).
    pub fn flush_interval(mut self, every: Duration) -> Self {
        self.settings.flush_interval = every;
        self
    }

    /// Validates the settings and builds the router.
    ///
    /// # Errors
    ///
    /// [`RouterConfigError`] naming the first invalid setting.
    pub fn build(self) -> Result<FailoverRouter<C>, RouterConfigError> {
        self.settings.validate()?;
        Ok(FailoverRouter::from_parts(
            self.breaker,
            self.settings,
            self.classifier,
        ))
    }
}

impl Settings {
    fn validate(&self) -> Result<(), RouterConfigError> {
        let ms = Duration::from_millis(1);
        if self.max_retries == 0 {
            return Err(error("max_retries", "0", "it must be at least 1"));
        }
        if let Some(t) = self.attempt_timeout.filter(|t| *t < ms) {
            return Err(error("attempt_timeout", t, "it must be at least 1 ms"));
        }
        if let Some(t) = self.slow_call_threshold.filter(|t| *t < ms) {
            return Err(error("slow_call_threshold", t, "it must be at least 1 ms"));
        }
        if let (Some(slow), Some(limit)) = (self.slow_call_threshold, self.attempt_timeout)
            && slow >= limit
        {
            return Err(error(
                "slow_call_threshold",
                format!("{slow:?} with attempt_timeout {limit:?}"),
                "it must be below attempt_timeout, or it can never apply",
            ));
        }
        if !(1..=MAX_FAILURES_CAP).contains(&self.failures_cap) {
            return Err(error(
                "failures_cap",
                self.failures_cap,
                "it must be from 1 to 1,000,000",
            ));
        }
        if !(ms..=Duration::from_secs(3600)).contains(&self.flush_interval) {
            return Err(error(
                "flush_interval",
                self.flush_interval,
                "it must be from 1 ms to 1 h",
            ));
        }
        Ok(())
    }
}

fn error(
    field: &'static str,
    value: impl std::fmt::Debug,
    expected: &'static str,
) -> RouterConfigError {
    let value = format!("{value:?}");
    RouterConfigError {
        field,
        value: value.trim_matches('"').to_owned(),
        expected,
    }
}
