//! [`BreakerConfig`]: the tunables of the breaker, with validation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

mod settings;

pub use settings::{AgentSettings, SETTING_NAMES};

/// Tunables of every circuit a breaker manages (DESIGN.md section 2).
///
/// The defaults are those of the original specification. Build one with
/// [`BreakerConfig::builder`], which validates; a value deserialised with
/// serde should be checked with [`BreakerConfig::validate`].
///
/// Durations (de)serialise as milliseconds, so a JSON or TOML file reads
/// `"base_backoff_ms": 1000`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed circuit. Default `5`; at least 1.
    pub failure_threshold: u32,
    /// Probe permits in half-open, fleet-wide; that many probe successes close
    /// the circuit. Default `3`; at least 1.
    pub half_open_max_calls: u32,
    /// Backoff of a closed circuit. Default 1 s; at least 1 ms.
    #[serde(rename = "base_backoff_ms", with = "millis")]
    pub base_backoff: Duration,
    /// Every opening multiplies the backoff by this. Default `1.5`; from 1.0 to 1000.
    pub backoff_multiplier: f64,
    /// Cap on the backoff. Default 60 s; at least `base_backoff`, at most 30 days.
    #[serde(rename = "max_backoff_ms", with = "millis")]
    pub max_backoff: Duration,
    /// Lease of a half-open probe permit: a probe whose outcome has not come
    /// back in this time is presumed lost and its permit returns. Default 30 s;
    /// at least 1 ms, at most 30 days.
    #[serde(rename = "recovery_timeout_ms", with = "millis")]
    pub recovery_timeout: Duration,
    /// An agent nobody has called for this long is forgotten: its keys
    /// expire and it leaves the agents set, so ids used once do not stay in
    /// the store for ever. Only a closed circuit expires: an open,
    /// half-open or forced one is kept however long it is left alone.
    /// `None` keeps every agent. Default 7 days: longer than any weekly
    /// traffic pattern, so an agent in use never loses its counters, and
    /// short enough that a fleet that churns ids (one per customer, per
    /// deployment) holds a week of them, not all it ever saw. From 1 s to
    /// 365 days. In JSON `idle_ttl_ms`, `null` for `None`. A store shared
    /// through Redis only: the embedded [`MemoryStore`](crate::MemoryStore)
    /// keeps its agents for the life of its process.
    #[serde(rename = "idle_ttl_ms", with = "millis_opt")]
    pub idle_ttl: Option<Duration>,
    /// Trip on the failure rate: a closed circuit opens when the failed
    /// share of the fleet's calls in the last [`window`](Self::window) reaches
    /// this fraction, once there were at least
    /// [`minimum_calls`](Self::minimum_calls). `None` (default): off. From
    /// 0 (exclusive) to 1.
    pub failure_rate_threshold: Option<f64>,
    /// A call at least this slow is a slow call (a slow success is still a
    /// success). `None` (default): no call is slow. From 1 ms to 30 days. In
    /// JSON `slow_call_duration_ms`.
    #[serde(rename = "slow_call_duration_ms", with = "millis_opt")]
    pub slow_call_duration: Option<Duration>,
    /// Trip on the slow-call rate: as
    /// [`failure_rate_threshold`](Self::failure_rate_threshold), for calls
    /// slower than [`slow_call_duration`](Self::slow_call_duration).
    /// `None` (default): off. From 0 (exclusive) to 1.
    pub slow_call_rate_threshold: Option<f64>,
    /// The sliding window the rates are measured over: 10 buckets of a
    /// tenth of it each, in store time. Default 10 s; from 1 s to 1 hour, in
    /// whole multiples of 10 ms. In JSON `window_ms`.
    #[serde(rename = "window_ms", with = "millis")]
    pub window: Duration,
    /// No rate trips the circuit under this many calls in the window.
    /// Default `20`; at least 1.
    pub minimum_calls: u32,
    /// Quorum: a trip (except by a retry-after) needs failures or slow calls
    /// reported by at least this many distinct pods in the window. Below it
    /// the pod whose outcome met the condition opens the agent for itself
    /// alone. Default `1` (any pod can trip the fleet); from 1 to 64.
    pub min_reporting_pods: u32,
    /// Spread of each open time: `open_until = now + backoff x (1 + d)`
    /// with `|d| <= backoff_jitter`, drawn by the store from the agent, the
    /// generation and the time, so every pod sees the same value. Default 0;
    /// from 0 to 0.5.
    pub backoff_jitter: f64,
}

const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
const MAX_MULTIPLIER: f64 = 1000.0;
const MIN_IDLE_TTL: Duration = Duration::from_secs(1);
const MAX_IDLE_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
const MIN_WINDOW: Duration = Duration::from_secs(1);
const MAX_WINDOW: Duration = Duration::from_secs(3600);
/// Most pods a quorum may ask for: the store keeps that many reporters.
pub const MAX_REPORTING_PODS: u32 = 64;
/// Most spread of an open time.
pub const MAX_JITTER: f64 = 0.5;
/// Buckets of a rate window.
pub const WINDOW_BUCKETS: u64 = 10;

/// The default of [`BreakerConfig::idle_ttl`]: 7 days.
pub const DEFAULT_IDLE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            half_open_max_calls: 3,
            base_backoff: Duration::from_secs(1),
            backoff_multiplier: 1.5,
            max_backoff: Duration::from_secs(60),
            recovery_timeout: Duration::from_secs(30),
            idle_ttl: Some(DEFAULT_IDLE_TTL),
            failure_rate_threshold: None,
            slow_call_duration: None,
            slow_call_rate_threshold: None,
            window: Duration::from_secs(10),
            minimum_calls: 20,
            min_reporting_pods: 1,
            backoff_jitter: 0.0,
        }
    }
}

impl std::fmt::Display for BreakerConfig {
    /// One line for people, e.g. the defaults: `5 failures open a circuit,
    /// 3 probes close it; backoff 1 s, x1.5 per opening, up to 60 s; probe
    /// lease 30 s`. The `--help` of the binary shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failures open a circuit, {} probes close it; backoff {}, x{} per \
             opening, up to {}; probe lease {}",
            self.failure_threshold,
            self.half_open_max_calls,
            human(self.base_backoff),
            self.backoff_multiplier,
            human(self.max_backoff),
            human(self.recovery_timeout)
        )?;
        if let Some(rate) = self.failure_rate_threshold {
            write!(f, "; {}% failed calls", rate * 100.0)?;
        }
        if let (Some(rate), Some(slow)) = (self.slow_call_rate_threshold, self.slow_call_duration) {
            write!(f, "; {}% calls slower than {}", rate * 100.0, human(slow))?;
        }
        if self.windowed() {
            write!(
                f,
                " in {} (at least {} calls)",
                human(self.window),
                self.minimum_calls
            )?;
        }
        if self.min_reporting_pods > 1 {
            write!(f, "; a trip needs {} pods", self.min_reporting_pods)?;
        }
        if self.backoff_jitter > 0.0 {
            write!(f, "; jitter {}", self.backoff_jitter)?;
        }
        Ok(())
    }
}

/// `1 s`, `60 s`, `250 ms`: whole seconds as seconds, anything else in ms.
fn human(d: Duration) -> String {
    let ms = duration_ms(d);
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// An invalid [`BreakerConfig`] value: names the field and the allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid breaker config: `{field}` is {value}, but {expected}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// The value it had, rendered.
    pub value: String,
    /// What is allowed.
    pub expected: &'static str,
}

impl BreakerConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> BreakerConfigBuilder {
        BreakerConfigBuilder {
            config: Self::default(),
        }
    }

    /// Checks every field against its allowed range.
    ///
    /// # Errors
    ///
    /// The first invalid field, as a [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field, value: String, expected| {
            Err(ConfigError {
                field,
                value,
                expected,
            })
        };
        if self.failure_threshold == 0 {
            return fail("failure_threshold", "0".into(), "it must be at least 1");
        }
        if self.half_open_max_calls == 0 {
            return fail("half_open_max_calls", "0".into(), "it must be at least 1");
        }
        if !(self.backoff_multiplier.is_finite()
            && (1.0..=MAX_MULTIPLIER).contains(&self.backoff_multiplier))
        {
            return fail(
                "backoff_multiplier",
                self.backoff_multiplier.to_string(),
                "it must be a number from 1.0 to 1000",
            );
        }
        for (field, value) in [
            ("base_backoff", self.base_backoff),
            ("max_backoff", self.max_backoff),
            ("recovery_timeout", self.recovery_timeout),
        ] {
            if value < Duration::from_millis(1) || value > MAX_DURATION {
                return fail(
                    field,
                    format!("{value:?}"),
                    "it must be from 1 ms to 30 days",
                );
            }
        }
        if let Some(ttl) = self.idle_ttl
            && !(MIN_IDLE_TTL..=MAX_IDLE_TTL).contains(&ttl)
        {
            return fail(
                "idle_ttl",
                format!("{ttl:?}"),
                "it must be from 1 s to 365 days, or none to keep every agent",
            );
        }
        self.validate_policies()?;
        if self.max_backoff < self.base_backoff {
            return fail(
                "max_backoff",
                format!("{:?}", self.max_backoff),
                "it must be at least base_backoff",
            );
        }
        Ok(())
    }

    /// The ranges of the trip policies' fields.
    fn validate_policies(&self) -> Result<(), ConfigError> {
        for (field, rate) in [
            ("failure_rate_threshold", self.failure_rate_threshold),
            ("slow_call_rate_threshold", self.slow_call_rate_threshold),
        ] {
            if let Some(rate) = rate
                && !(rate > 0.0 && rate <= 1.0)
            {
                return Err(ConfigError {
                    field,
                    value: rate.to_string(),
                    expected: "it must be a fraction above 0 and at most 1, or none (off)",
                });
            }
        }
        if let Some(slow) = self.slow_call_duration
            && (slow < Duration::from_millis(1) || slow > MAX_DURATION)
        {
            return Err(ConfigError {
                field: "slow_call_duration",
                value: format!("{slow:?}"),
                expected: "it must be from 1 ms to 30 days, or none (no call is slow)",
            });
        }
        if self.slow_call_rate_threshold.is_some() && self.slow_call_duration.is_none() {
            return Err(ConfigError {
                field: "slow_call_rate_threshold",
                value: format!("{:?}", self.slow_call_rate_threshold),
                expected: "it needs slow_call_duration, which says what a slow call is",
            });
        }
        let window_ms = duration_ms(self.window);
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&self.window) || !window_ms.is_multiple_of(10) {
            return Err(ConfigError {
                field: "window",
                value: format!("{:?}", self.window),
                expected: "it must be from 1 s to 1 hour, in whole multiples of 10 ms",
            });
        }
        if self.minimum_calls == 0 {
            return Err(ConfigError {
                field: "minimum_calls",
                value: "0".into(),
                expected: "it must be at least 1",
            });
        }
        if !(1..=MAX_REPORTING_PODS).contains(&self.min_reporting_pods) {
            return Err(ConfigError {
                field: "min_reporting_pods",
                value: self.min_reporting_pods.to_string(),
                expected: "it must be from 1 to 64",
            });
        }
        if !(0.0..=MAX_JITTER).contains(&self.backoff_jitter) {
            return Err(ConfigError {
                field: "backoff_jitter",
                value: self.backoff_jitter.to_string(),
                expected: "it must be from 0 to 0.5",
            });
        }
        Ok(())
    }

    /// Whether a rate policy or a quorum needs the window of calls.
    #[must_use]
    pub fn windowed(&self) -> bool {
        self.failure_rate_threshold.is_some()
            || self.slow_call_rate_threshold.is_some()
            || self.min_reporting_pods > 1
    }

    /// The length of one of the window's [`WINDOW_BUCKETS`] buckets, in ms.
    #[must_use]
    pub fn bucket_ms(&self) -> u64 {
        (duration_ms(self.window) / WINDOW_BUCKETS).max(1)
    }

    /// `slow_call_duration` in whole milliseconds, 0 for none.
    pub(crate) fn slow_call_ms(&self) -> u64 {
        self.slow_call_duration.map_or(0, duration_ms)
    }

    /// `base_backoff` in whole milliseconds.
    pub(crate) fn base_backoff_ms(&self) -> u64 {
        duration_ms(self.base_backoff)
    }

    /// `max_backoff` in whole milliseconds.
    pub(crate) fn max_backoff_ms(&self) -> u64 {
        duration_ms(self.max_backoff)
    }

    /// `recovery_timeout` in whole milliseconds.
    pub(crate) fn recovery_timeout_ms(&self) -> u64 {
        duration_ms(self.recovery_timeout)
    }

    /// `idle_ttl` in whole milliseconds, 0 for none.
    pub(crate) fn idle_ttl_ms(&self) -> u64 {
        self.idle_ttl.map_or(0, duration_ms)
    }
}

/// Whole milliseconds of a duration, saturating.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Builder of a validated [`BreakerConfig`].
#[derive(Debug, Clone)]
#[must_use]
pub struct BreakerConfigBuilder {
    config: BreakerConfig,
}

impl BreakerConfigBuilder {
    /// Sets [`BreakerConfig::failure_threshold`].
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.config.failure_threshold = n;
        self
    }

    /// Sets [`BreakerConfig::half_open_max_calls`].
    pub fn half_open_max_calls(mut self, n: u32) -> Self {
        self.config.half_open_max_calls = n;
        self
    }

    /// Sets [`BreakerConfig::base_backoff`].
    pub fn base_backoff(mut self, d: Duration) -> Self {
        self.config.base_backoff = d;
        self
    }

    /// Sets [`BreakerConfig::backoff_multiplier`].
    pub fn backoff_multiplier(mut self, m: f64) -> Self {
        self.config.backoff_multiplier = m;
        self
    }

    /// Sets [`BreakerConfig::max_backoff`].
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.config.max_backoff = d;
        self
    }

    /// Sets [`BreakerConfig::recovery_timeout`].
    pub fn recovery_timeout(mut self, d: Duration) -> Self {
        self.config.recovery_timeout = d;
        self
    }

    /// Sets [`BreakerConfig::idle_ttl`] (`None`: keep every agent).
    pub fn idle_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.config.idle_ttl = ttl;
        self
    }

    /// Sets [`BreakerConfig::failure_rate_threshold`] (`None`: off).
    pub fn failure_rate_threshold(mut self, rate: Option<f64>) -> Self {
        self.config.failure_rate_threshold = rate;
        self
    }

    /// Sets [`BreakerConfig::slow_call_duration`] (`None`: no call is slow).
    pub fn slow_call_duration(mut self, d: Option<Duration>) -> Self {
        self.config.slow_call_duration = d;
        self
    }

    /// Sets [`BreakerConfig::slow_call_rate_threshold`] (`None`: off).
    pub fn slow_call_rate_threshold(mut self, rate: Option<f64>) -> Self {
        self.config.slow_call_rate_threshold = rate;
        self
    }

    /// Sets [`BreakerConfig::window`].
    pub fn window(mut self, d: Duration) -> Self {
        self.config.window = d;
        self
    }

    /// Sets [`BreakerConfig::minimum_calls`].
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.config.minimum_calls = n;
        self
    }

    /// Sets [`BreakerConfig::min_reporting_pods`].
    pub fn min_reporting_pods(mut self, n: u32) -> Self {
        self.config.min_reporting_pods = n;
        self
    }

    /// Sets [`BreakerConfig::backoff_jitter`].
    pub fn backoff_jitter(mut self, spread: f64) -> Self {
        self.config.backoff_jitter = spread;
        self
    }

    /// Validates and returns the config.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first invalid field and its allowed range.
    pub fn build(self) -> Result<BreakerConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(super::duration_ms(*d))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

mod millis_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&super::duration_ms(*d)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}
