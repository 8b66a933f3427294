//! `BreakerConfig`: defaults from the specification, validation naming the
//! offending field, and the JSON shape operators write.

use std::time::Duration;

use fleet_breaker::config::BreakerConfigBuilder;
use fleet_breaker::{BreakerConfig, ConfigError};
use serde_json::json;

/// Builds the default config with one change, and returns the error.
fn invalid(change: impl FnOnce(&mut BreakerConfig)) -> ConfigError {
    let mut config = BreakerConfig::default();
    change(&mut config);
    config
        .validate()
        .expect_err("the change makes the config invalid")
}

fn assert_names(err: &ConfigError, field: &str) {
    assert_eq!(err.field, field);
    let message = err.to_string();
    assert!(
        message.contains(&format!("`{field}`")),
        "the message names `{field}`: {message}"
    );
}

#[test]
fn defaults_match_the_specification_table() {
    let config = BreakerConfig::default();
    assert_eq!(config.failure_threshold, 5);
    assert_eq!(config.half_open_max_calls, 3);
    assert_eq!(config.base_backoff, Duration::from_secs(1));
    assert!((config.backoff_multiplier - 1.5).abs() < f64::EPSILON);
    assert_eq!(config.max_backoff, Duration::from_secs(60));
    assert_eq!(config.recovery_timeout, Duration::from_secs(30));
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn builder_starts_from_the_defaults_and_sets_each_field() {
    assert_eq!(
        BreakerConfig::builder().build(),
        Ok(BreakerConfig::default())
    );

    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .half_open_max_calls(7)
        .base_backoff(Duration::from_millis(250))
        .backoff_multiplier(2.0)
        .max_backoff(Duration::from_secs(5))
        .recovery_timeout(Duration::from_secs(9))
        .idle_ttl(Some(Duration::from_secs(3600)))
        .failure_rate_threshold(Some(0.5))
        .slow_call_duration(Some(Duration::from_millis(800)))
        .slow_call_rate_threshold(Some(0.9))
        .window(Duration::from_secs(20))
        .minimum_calls(30)
        .min_reporting_pods(2)
        .backoff_jitter(0.2)
        .build()
        .expect("valid config");

    assert_eq!(
        config,
        BreakerConfig {
            failure_threshold: 2,
            half_open_max_calls: 7,
            base_backoff: Duration::from_millis(250),
            backoff_multiplier: 2.0,
            max_backoff: Duration::from_secs(5),
            recovery_timeout: Duration::from_secs(9),
            idle_ttl: Some(Duration::from_secs(3600)),
            failure_rate_threshold: Some(0.5),
            slow_call_duration: Some(Duration::from_millis(800)),
            slow_call_rate_threshold: Some(0.9),
            window: Duration::from_secs(20),
            minimum_calls: 30,
            min_reporting_pods: 2,
            backoff_jitter: 0.2,
        }
    );
}

#[test]
fn the_trip_policies_refuse_values_out_of_range_naming_the_field() {
    let cases: [(BreakerConfigBuilder, &str); 8] = [
        (
            BreakerConfig::builder().failure_rate_threshold(Some(0.0)),
            "failure_rate_threshold",
        ),
        (
            BreakerConfig::builder().failure_rate_threshold(Some(1.5)),
            "failure_rate_threshold",
        ),
        (
            BreakerConfig::builder().slow_call_rate_threshold(Some(0.5)),
            "slow_call_rate_threshold",
        ),
        (
            BreakerConfig::builder().window(Duration::from_millis(999)),
            "window",
        ),
        (
            BreakerConfig::builder().window(Duration::from_millis(1_005)),
            "window",
        ),
        (BreakerConfig::builder().minimum_calls(0), "minimum_calls"),
        (
            BreakerConfig::builder().min_reporting_pods(65),
            "min_reporting_pods",
        ),
        (
            BreakerConfig::builder().backoff_jitter(0.6),
            "backoff_jitter",
        ),
    ];
    for (builder, field) in cases {
        let error = builder.build().expect_err(field);
        assert_eq!(error.field, field, "{error}");
        assert!(error.to_string().contains(field), "{error}");
    }
}

#[test]
fn idle_ttl_is_from_a_second_to_a_year_or_none() {
    for bad in [
        Duration::ZERO,
        Duration::from_millis(999),
        Duration::from_secs(366 * 24 * 3600),
    ] {
        let err = invalid(|c| c.idle_ttl = Some(bad));
        assert_names(&err, "idle_ttl");
        assert!(err.expected.contains("none"), "{err}");
    }
    for ok in [
        None,
        Some(Duration::from_secs(1)),
        Some(Duration::from_secs(365 * 24 * 3600)),
    ] {
        let config = BreakerConfig::builder().idle_ttl(ok).build();
        assert!(config.is_ok(), "{ok:?}: {config:?}");
    }
    assert_eq!(
        BreakerConfig::default().idle_ttl,
        Some(Duration::from_secs(7 * 24 * 3600))
    );
}

#[test]
fn idle_ttl_reads_as_milliseconds_or_null() {
    let keep: BreakerConfig = serde_json::from_str(r#"{"idle_ttl_ms": null}"#).expect("null");
    assert_eq!(keep.idle_ttl, None);
    let day: BreakerConfig = serde_json::from_str(r#"{"idle_ttl_ms": 86400000}"#).expect("ms");
    assert_eq!(day.idle_ttl, Some(Duration::from_secs(86_400)));
    let json = serde_json::to_value(BreakerConfig::default()).expect("serialises");
    assert_eq!(json["idle_ttl_ms"], 604_800_000);
}

#[test]
fn failure_threshold_of_zero_is_refused() {
    assert_names(&invalid(|c| c.failure_threshold = 0), "failure_threshold");
}

#[test]
fn half_open_max_calls_of_zero_is_refused() {
    assert_names(
        &invalid(|c| c.half_open_max_calls = 0),
        "half_open_max_calls",
    );
}

#[test]
fn multiplier_below_one_nan_infinite_or_above_a_thousand_is_refused() {
    for bad in [0.99, 0.0, -1.5, f64::NAN, f64::INFINITY, 1000.5] {
        let err = invalid(|c| c.backoff_multiplier = bad);
        assert_names(&err, "backoff_multiplier");
        assert_eq!(err.value, bad.to_string());
    }
}

#[test]
fn multiplier_of_exactly_one_or_a_thousand_is_accepted() {
    for ok in [1.0, 1000.0] {
        let config = BreakerConfig::builder().backoff_multiplier(ok).build();
        assert!(config.is_ok(), "{ok}: {config:?}");
    }
}

#[test]
fn max_backoff_below_base_backoff_is_refused() {
    let err = invalid(|c| {
        c.base_backoff = Duration::from_secs(10);
        c.max_backoff = Duration::from_secs(9);
    });
    assert_names(&err, "max_backoff");
    assert!(err.to_string().contains("base_backoff"), "{err}");
}

#[test]
fn max_backoff_equal_to_base_backoff_is_accepted() {
    let config = BreakerConfig::builder()
        .base_backoff(Duration::from_secs(3))
        .max_backoff(Duration::from_secs(3))
        .build();
    assert!(config.is_ok(), "{config:?}");
}

#[test]
fn zero_or_sub_millisecond_durations_are_refused_naming_the_field() {
    for tiny in [Duration::ZERO, Duration::from_micros(999)] {
        assert_names(&invalid(|c| c.base_backoff = tiny), "base_backoff");
        assert_names(&invalid(|c| c.max_backoff = tiny), "max_backoff");
        assert_names(&invalid(|c| c.recovery_timeout = tiny), "recovery_timeout");
    }
}

#[test]
fn durations_beyond_thirty_days_are_refused_naming_the_field() {
    let too_long = Duration::from_secs(30 * 24 * 3600 + 1);
    assert_names(
        &invalid(|c| {
            c.base_backoff = too_long;
            c.max_backoff = too_long;
        }),
        "base_backoff",
    );
    assert_names(&invalid(|c| c.max_backoff = too_long), "max_backoff");
    assert_names(
        &invalid(|c| c.recovery_timeout = too_long),
        "recovery_timeout",
    );
}

#[test]
fn builder_refuses_an_invalid_field_at_build_time() {
    let err = BreakerConfig::builder()
        .failure_threshold(0)
        .build()
        .expect_err("threshold 0 is invalid");
    assert_names(&err, "failure_threshold");
}

#[test]
fn config_serialises_with_millisecond_field_names() {
    let value = serde_json::to_value(BreakerConfig::default()).expect("serialises");
    assert_eq!(
        value,
        json!({
            "failure_threshold": 5,
            "half_open_max_calls": 3,
            "base_backoff_ms": 1000,
            "backoff_multiplier": 1.5,
            "max_backoff_ms": 60000,
            "recovery_timeout_ms": 30000,
            "idle_ttl_ms": 604_800_000,
            "failure_rate_threshold": null,
            "slow_call_duration_ms": null,
            "slow_call_rate_threshold": null,
            "window_ms": 10000,
            "minimum_calls": 20,
            "min_reporting_pods": 1,
            "backoff_jitter": 0.0,
        })
    );
}

#[test]
fn config_round_trips_through_json() {
    let config = BreakerConfig::builder()
        .failure_threshold(9)
        .half_open_max_calls(2)
        .base_backoff(Duration::from_millis(125))
        .backoff_multiplier(3.25)
        .max_backoff(Duration::from_millis(4_000))
        .recovery_timeout(Duration::from_millis(777))
        .build()
        .expect("valid config");

    let text = serde_json::to_string(&config).expect("serialises");
    let back: BreakerConfig = serde_json::from_str(&text).expect("deserialises");

    assert_eq!(back, config);
}

#[test]
fn missing_fields_take_their_defaults() {
    let config: BreakerConfig =
        serde_json::from_str(r#"{"failure_threshold": 2, "max_backoff_ms": 9000}"#)
            .expect("deserialises");
    assert_eq!(
        config,
        BreakerConfig {
            failure_threshold: 2,
            max_backoff: Duration::from_secs(9),
            ..BreakerConfig::default()
        }
    );
}

#[test]
fn unknown_fields_are_refused() {
    let err = serde_json::from_str::<BreakerConfig>(r#"{"base_backoff": 1000}"#)
        .expect_err("`base_backoff` is spelled `base_backoff_ms` in JSON");
    assert!(err.to_string().contains("base_backoff"), "{err}");
}

#[test]
fn deserialised_invalid_values_are_caught_by_validate() {
    let config: BreakerConfig =
        serde_json::from_str(r#"{"half_open_max_calls": 0}"#).expect("serde does not validate");
    let err = config.validate().expect_err("0 probes is invalid");
    assert_names(&err, "half_open_max_calls");
}
