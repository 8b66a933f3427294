//! The parts of an agent's stored state the trip policies added, as the
//! scripts write and check them (`lua/load.lua`): the window's two hash
//! fields and the settings hash, for replies and for reads without a script.

use crate::config::{AgentSettings, SETTING_NAMES};
use crate::model::{Bucket, Reporter, Window};

/// The window's hash fields, as `WINDOW_FIELDS` in `lua/lib.lua`: one per
/// bucket (its index modulo 10), then the reporters.
pub(super) const WINDOW_FIELDS: [&str; 11] = [
    "w0",
    "w1",
    "w2",
    "w3",
    "w4",
    "w5",
    "w6",
    "w7",
    "w8",
    "w9",
    "reporters",
];
/// What `load.lua` expects of a bucket's field.
pub(super) const EXPECTED_BUCKET: &str =
    "index:calls:failures:slow, the index ending in the field's digit";
/// What `load.lua` expects of the field `reporters`.
pub(super) const EXPECTED_REPORTERS: &str = "pod=bucket, comma-separated";

/// The window from the text of its two hash fields (`""`: absent); the
/// name of the first corrupt field otherwise.
pub(super) fn parse_window(window: &str, reporters: &str) -> Result<Window, &'static str> {
    let mut w = Window::default();
    for item in window.split(',').filter(|item| !item.is_empty()) {
        let numbers: Option<Vec<u64>> = item.split(':').map(digits).collect();
        let Some([index, calls, failures, slow]) =
            numbers.and_then(|n| <[u64; 4]>::try_from(n).ok())
        else {
            return Err("window");
        };
        if w.buckets.last().is_some_and(|b| b.index >= index) {
            return Err("window");
        }
        w.buckets.push(Bucket {
            index,
            calls,
            failures,
            slow,
        });
    }
    for item in reporters.split(',').filter(|item| !item.is_empty()) {
        let Some((pod, bucket)) = item.rsplit_once('=') else {
            return Err("reporters");
        };
        let pod_ok = !pod.is_empty()
            && pod
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@/-".contains(&b));
        match digits(bucket) {
            Some(bucket) if pod_ok => w.reporters.push(Reporter {
                pod: pod.to_owned(),
                bucket,
            }),
            _ => return Err("reporters"),
        }
    }
    Ok(w)
}

/// The window from the stored values of [`WINDOW_FIELDS`] (`None`:
/// absent), checked as `parse_window` in `load.lua` checks them; else the
/// first corrupt field, its value and what was expected.
pub(super) fn parse_stored_window(
    values: &[Option<String>],
) -> Result<Window, (&'static str, Option<String>, &'static str)> {
    let mut w = Window::default();
    for (k, field) in WINDOW_FIELDS[..10].iter().enumerate() {
        let Some(text) = values.get(k).and_then(Option::as_deref) else {
            continue;
        };
        let numbers: Option<Vec<u64>> = text.split(':').map(digits).collect();
        match numbers.and_then(|n| <[u64; 4]>::try_from(n).ok()) {
            Some([index, calls, failures, slow]) if index % 10 == k as u64 => {
                w.buckets.push(Bucket {
                    index,
                    calls,
                    failures,
                    slow,
                });
            }
            _ => return Err((field, Some(text.to_owned()), EXPECTED_BUCKET)),
        }
    }
    w.buckets.sort_by_key(|b| b.index);
    let reporters = values.get(10).and_then(Option::as_deref).unwrap_or("");
    let parsed = parse_window("", reporters)
        .map_err(|_| ("reporters", Some(reporters.to_owned()), EXPECTED_REPORTERS))?;
    w.reporters = parsed.reporters;
    Ok(w)
}

/// A run of decimal digits below 2^53, as `%d+` and `to_uint` read it.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok().filter(|&n| n < 1 << 53)
}

/// Each setting's range as `SETTINGS` in `load.lua` checks it: name, min,
/// max, whole number.
const RANGES: [(&str, f64, f64, bool); 13] = [
    ("failure_threshold", 1.0, 4_294_967_295.0, true),
    ("half_open_max_calls", 1.0, 4_294_967_295.0, true),
    ("base_backoff_ms", 1.0, 2_592_000_000.0, true),
    ("backoff_multiplier", 1.0, 1000.0, false),
    ("max_backoff_ms", 1.0, 2_592_000_000.0, true),
    ("recovery_timeout_ms", 1.0, 2_592_000_000.0, true),
    ("failure_rate_threshold", 0.0, 1.0, false),
    ("slow_call_duration_ms", 0.0, 2_592_000_000.0, true),
    ("slow_call_rate_threshold", 0.0, 1.0, false),
    ("window_ms", 1000.0, 3_600_000.0, true),
    ("minimum_calls", 1.0, 4_294_967_295.0, true),
    ("min_reporting_pods", 1.0, 64.0, true),
    ("backoff_jitter", 0.0, 0.5, false),
];

/// A stored setting that `load.lua` refuses: its name, its value and what
/// was expected.
pub(super) type BadSetting = (String, Option<String>, String);

/// The settings from the config hash's `(name, text)` pairs, checked as
/// `read_settings` in `load.lua` checks them.
pub(super) fn parse_settings(pairs: &[(String, String)]) -> Result<AgentSettings, BadSetting> {
    for (name, text) in pairs {
        let Some(&(_, min, max, whole)) = RANGES.iter().find(|r| r.0 == name) else {
            return Err((
                name.clone(),
                Some(text.clone()),
                "no such setting".to_owned(),
            ));
        };
        let n: f64 = text.trim().parse().unwrap_or(f64::NAN);
        let fits = n >= min
            && n <= max
            && (!whole || n.fract() == 0.0)
            && (name != "window_ms" || n % 10.0 == 0.0);
        if !fits {
            return Err((
                name.clone(),
                Some(text.clone()),
                format!("a number from {min} to {max}"),
            ));
        }
    }
    let ordered = SETTING_NAMES.iter().filter_map(|name| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(n, t)| (n.as_str(), t.trim()))
    });
    AgentSettings::from_fields(ordered)
        .map_err(|e| (e.field.to_owned(), Some(e.value), e.expected.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_fields_read_back_and_refuse_what_load_lua_refuses() {
        let w = parse_window("7:10:2:1,9:4:0:0", "pod-b=9,pod-a=7").unwrap();
        assert_eq!(w.buckets.len(), 2);
        assert_eq!(w.buckets[1].calls, 4);
        assert_eq!(w.reporters[0].pod, "pod-b");
        assert_eq!(parse_window("", "").unwrap(), Window::default());
        for bad in [
            "9:1:0:0,7:1:0:0",
            "1:2:3",
            "1:2:3:4:5",
            "a:1:1:1",
            "-1:1:1:1",
        ] {
            assert_eq!(parse_window(bad, ""), Err("window"), "{bad}");
        }
        for bad in ["pod", "=3", "p od=3", "pod=x"] {
            assert_eq!(parse_window("", bad), Err("reporters"), "{bad}");
        }
    }

    #[test]
    fn a_bucket_lives_in_the_field_of_its_index_modulo_ten() {
        let mut values = vec![None; 11];
        values[9] = Some("19:4:0:0".to_owned());
        values[7] = Some("17:10:2:1".to_owned());
        values[10] = Some("pod-a=17".to_owned());
        let w = parse_stored_window(&values).unwrap();
        assert_eq!(
            w.buckets.iter().map(|b| b.index).collect::<Vec<_>>(),
            [17, 19]
        );
        values[3] = Some("17:1:1:1".to_owned());
        assert_eq!(parse_stored_window(&values).unwrap_err().0, "w3");
    }

    #[test]
    fn settings_out_of_range_are_refused_with_load_lua_words() {
        let ok = parse_settings(&[("failure_rate_threshold".into(), "0.5".into())]).unwrap();
        assert_eq!(ok.failure_rate_threshold, Some(0.5));
        let (field, _, expected) =
            parse_settings(&[("min_reporting_pods".into(), "65".into())]).unwrap_err();
        assert_eq!(
            (field.as_str(), expected.as_str()),
            ("min_reporting_pods", "a number from 1 to 64")
        );
        let (_, _, expected) =
            parse_settings(&[("backoff_jitter".into(), "0.6".into())]).unwrap_err();
        assert_eq!(expected, "a number from 0 to 0.5");
        let (field, _, _) = parse_settings(&[("colour".into(), "1".into())]).unwrap_err();
        assert_eq!(field, "colour");
    }
}
