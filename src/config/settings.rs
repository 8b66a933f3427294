//! [`AgentSettings`]: one agent's settings, stored with it, that override the
//! process's [`BreakerConfig`] field by field.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BreakerConfig, ConfigError};

/// Settings stored for one agent (in Redis, the hash `PREFIX:{AGENT}:config`)
/// that override the process's [`BreakerConfig`] for that agent, field by
/// field: every pod reads them with the agent's state, so a change applies
/// fleet-wide at the next call, without a restart.
///
/// Every field is optional (`None`: the process's value). The names are those
/// of [`BreakerConfig`]'s JSON. A rate threshold or `slow_call_duration_ms`
/// of 0 turns that policy off for the agent, whatever the process says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// [`BreakerConfig::failure_threshold`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    /// [`BreakerConfig::half_open_max_calls`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub half_open_max_calls: Option<u32>,
    /// [`BreakerConfig::base_backoff`], in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_backoff_ms: Option<u64>,
    /// [`BreakerConfig::backoff_multiplier`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_multiplier: Option<f64>,
    /// [`BreakerConfig::max_backoff`], in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_backoff_ms: Option<u64>,
    /// [`BreakerConfig::recovery_timeout`], in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_timeout_ms: Option<u64>,
    /// [`BreakerConfig::failure_rate_threshold`]; 0: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_rate_threshold: Option<f64>,
    /// [`BreakerConfig::slow_call_duration`], in ms; 0: no call is slow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_call_duration_ms: Option<u64>,
    /// [`BreakerConfig::slow_call_rate_threshold`]; 0: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_call_rate_threshold: Option<f64>,
    /// [`BreakerConfig::window`], in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
    /// [`BreakerConfig::minimum_calls`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_calls: Option<u32>,
    /// [`BreakerConfig::min_reporting_pods`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_reporting_pods: Option<u32>,
    /// [`BreakerConfig::backoff_jitter`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_jitter: Option<f64>,
}

/// The names of [`AgentSettings`]' fields, as stored and as JSON has them.
pub const SETTING_NAMES: [&str; 13] = [
    "failure_threshold",
    "half_open_max_calls",
    "base_backoff_ms",
    "backoff_multiplier",
    "max_backoff_ms",
    "recovery_timeout_ms",
    "failure_rate_threshold",
    "slow_call_duration_ms",
    "slow_call_rate_threshold",
    "window_ms",
    "minimum_calls",
    "min_reporting_pods",
    "backoff_jitter",
];

impl AgentSettings {
    /// Whether no field is set (the agent follows the process's config).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.fields().is_empty()
    }

    /// `base` with every set field overriding its own.
    #[must_use]
    pub fn apply(&self, base: &BreakerConfig) -> BreakerConfig {
        let mut c = *base;
        let on = |rate: f64| (rate > 0.0).then_some(rate);
        if let Some(v) = self.failure_threshold {
            c.failure_threshold = v;
        }
        if let Some(v) = self.half_open_max_calls {
            c.half_open_max_calls = v;
        }
        if let Some(v) = self.base_backoff_ms {
            c.base_backoff = Duration::from_millis(v);
        }
        if let Some(v) = self.backoff_multiplier {
            c.backoff_multiplier = v;
        }
        if let Some(v) = self.max_backoff_ms {
            c.max_backoff = Duration::from_millis(v);
        }
        if let Some(v) = self.recovery_timeout_ms {
            c.recovery_timeout = Duration::from_millis(v);
        }
        if let Some(v) = self.failure_rate_threshold {
            c.failure_rate_threshold = on(v);
        }
        if let Some(v) = self.slow_call_duration_ms {
            c.slow_call_duration = (v > 0).then(|| Duration::from_millis(v));
        }
        if let Some(v) = self.slow_call_rate_threshold {
            c.slow_call_rate_threshold = on(v);
        }
        if let Some(v) = self.window_ms {
            c.window = Duration::from_millis(v);
        }
        if let Some(v) = self.minimum_calls {
            c.minimum_calls = v;
        }
        if let Some(v) = self.min_reporting_pods {
            c.min_reporting_pods = v;
        }
        if let Some(v) = self.backoff_jitter {
            c.backoff_jitter = v;
        }
        c
    }

    /// Checks every set field against its range, and the settings applied
    /// to `base` as a whole (`max_backoff` at least `base_backoff`, a slow-call
    /// rate with a slow-call duration).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first invalid field and its range.
    pub fn validate(&self, base: &BreakerConfig) -> Result<(), ConfigError> {
        self.check_ranges()?;
        self.apply(base).validate()
    }

    /// Each set field in its range, alone: what the store checks when it
    /// reads the settings (the process's config may differ between pods).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first invalid field and its range.
    pub fn check_ranges(&self) -> Result<(), ConfigError> {
        // Each field alone, on the defaults with whatever it needs to be
        // valid there (a slow-call duration for a slow-call rate, a max
        // backoff no lower than a base).
        let lone = AgentSettings {
            slow_call_duration_ms: Some(1),
            max_backoff_ms: self.base_backoff_ms.map(|_| 30 * 24 * 3600 * 1000),
            base_backoff_ms: self.max_backoff_ms.map(|_| 1),
            ..Self::default()
        };
        for (name, value) in self.fields() {
            let one = Self::from_fields([(name, value.as_str())])?;
            let mut probe = lone;
            probe.merge(&one);
            probe.apply(&BreakerConfig::default()).validate()?;
        }
        Ok(())
    }

    /// Sets, in `self`, every field `other` sets.
    pub fn merge(&mut self, other: &AgentSettings) {
        let fields = other.fields();
        let merged = Self::from_fields(
            self.fields()
                .iter()
                .chain(fields.iter())
                .map(|(n, v)| (*n, v.as_str())),
        );
        *self = merged.expect("fields written by fields() read back");
    }

    /// The set fields as `(name, text)`, in [`SETTING_NAMES`] order: what the
    /// store writes.
    #[must_use]
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let value = serde_json::to_value(self).expect("settings serialise");
        SETTING_NAMES
            .iter()
            .filter_map(|name| value.get(*name).map(|v| (*name, v.to_string())))
            .collect()
    }

    /// Settings from stored `(name, text)` pairs (a later pair of a name
    /// wins).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for an unknown name or a text that is not a number
    /// of the field's kind.
    pub fn from_fields<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let mut object = serde_json::Map::new();
        for (name, text) in pairs {
            let Some(known) = SETTING_NAMES.iter().find(|n| **n == name) else {
                return Err(ConfigError {
                    field: "settings",
                    value: format!("{name:?}"),
                    expected: "a field of BreakerConfig that an agent may override",
                });
            };
            let number: serde_json::Number = text.parse().map_err(|_| ConfigError {
                field: known,
                value: format!("{text:?}"),
                expected: "a number",
            })?;
            object.insert(name.to_owned(), serde_json::Value::Number(number));
        }
        serde_json::from_value(serde_json::Value::Object(object)).map_err(|error| ConfigError {
            field: "settings",
            value: error.to_string(),
            expected: "each field a number of its kind (whole for counts and ms)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_field_overrides_and_zero_turns_a_policy_off() {
        let base = BreakerConfig::builder()
            .failure_rate_threshold(Some(0.5))
            .build()
            .unwrap();
        let s = AgentSettings {
            failure_threshold: Some(9),
            failure_rate_threshold: Some(0.0),
            window_ms: Some(20_000),
            ..AgentSettings::default()
        };
        let c = s.apply(&base);
        assert_eq!(c.failure_threshold, 9);
        assert_eq!(c.failure_rate_threshold, None);
        assert_eq!(c.window, Duration::from_secs(20));
        assert_eq!(c.half_open_max_calls, base.half_open_max_calls);
    }

    #[test]
    fn fields_round_trip_in_name_order() {
        let s = AgentSettings {
            backoff_jitter: Some(0.25),
            failure_threshold: Some(3),
            failure_rate_threshold: Some(0.3),
            ..AgentSettings::default()
        };
        let fields = s.fields();
        assert_eq!(
            fields,
            vec![
                ("failure_threshold", "3".to_owned()),
                ("failure_rate_threshold", "0.3".to_owned()),
                ("backoff_jitter", "0.25".to_owned()),
            ]
        );
        let back =
            AgentSettings::from_fields(fields.iter().map(|(n, v)| (*n, v.as_str()))).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn invalid_values_name_the_field_and_its_range() {
        let base = BreakerConfig::default();
        let rate = AgentSettings {
            failure_rate_threshold: Some(1.5),
            ..AgentSettings::default()
        };
        assert_eq!(
            rate.validate(&base).unwrap_err().field,
            "failure_rate_threshold"
        );
        let pods = AgentSettings {
            min_reporting_pods: Some(0),
            ..AgentSettings::default()
        };
        assert_eq!(pods.check_ranges().unwrap_err().field, "min_reporting_pods");
        let max = AgentSettings {
            max_backoff_ms: Some(10),
            ..AgentSettings::default()
        };
        assert!(max.check_ranges().is_ok(), "alone, in range");
        assert_eq!(max.validate(&base).unwrap_err().field, "max_backoff");
        assert_eq!(
            AgentSettings::from_fields([("failure_threshold", "2.5")])
                .unwrap_err()
                .field,
            "settings"
        );
        assert_eq!(
            AgentSettings::from_fields([("idle_ttl_ms", "1")])
                .unwrap_err()
                .field,
            "settings"
        );
    }
}
