//! The stored state of an agent as `lua/load.lua` reads it, checked field
//! by field with the same messages, for reads made without a script.

use crate::model::{CircuitState, Snapshot};

const EXPECTED_STATE: &str = "closed, open, half_open, forced_open or forced_closed";
const EXPECTED_UINT: &str = "an integer from 0 to 2^53 - 1";
const EXPECTED_U32: &str = "an integer from 0 to 2^32 - 1";
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// The hash fields, in the order `lua/lib.lua`'s FIELDS checks them.
pub(super) const FIELDS: [&str; 11] = [
    "state",
    "failure_count",
    "success_count",
    "total_rejections",
    "last_failure_ms",
    "last_success_ms",
    "backoff_ms",
    "open_until_ms",
    "half_open_successes",
    "generation",
    "forced_until_ms",
];

/// The stored values of [`FIELDS`] then `epoch`, as `HMGET` gives them.
pub(super) type Fields = Vec<Option<Vec<u8>>>;

/// The first corrupt field: its name, its value (`None`: missing) and
/// what was expected.
pub(super) type Bad = (&'static str, Option<String>, &'static str);

/// The census field a stored snapshot calls for, as `census_entry` of
/// `lua/lib.lua` writes it: `None` for closed.
pub(super) fn census_entry(s: &Snapshot) -> Option<String> {
    match (s.state, s.forced_until_ms) {
        (CircuitState::Closed, _) => None,
        (CircuitState::ForcedOpen | CircuitState::ForcedClosed, Some(until)) => {
            Some(format!("{} {until}", s.state.as_str()))
        }
        (state, _) => Some(state.as_str().to_owned()),
    }
}

/// `HMGET` of [`FIELDS`], `epoch` and the window's fields from the hash at
/// `key`.
pub(super) fn hmget(key: &str) -> ::redis::Cmd {
    let mut cmd = ::redis::cmd("HMGET");
    cmd.arg(key)
        .arg(&FIELDS[..])
        .arg("epoch")
        .arg(&super::super::stored::WINDOW_FIELDS[..]);
    cmd
}

/// A stored hash as `load.lua` reads it, fields checked in FIELDS order,
/// then the epoch.
pub(super) fn parse(hash: &[Option<Vec<u8>>]) -> Result<Snapshot, Bad> {
    let mut numbers = [0_u64; 11];
    let mut state = CircuitState::Closed;
    for (i, field) in FIELDS.iter().enumerate() {
        let raw = hash.get(i).and_then(Option::as_ref);
        let bad = |expected| (*field, raw.map(|r| printable(r)), expected);
        if i == 0 {
            state = raw
                .and_then(|r| std::str::from_utf8(r).ok())
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| bad(EXPECTED_STATE))?;
            continue;
        }
        let n = raw
            .and_then(|r| lua_uint(r))
            .ok_or_else(|| bad(EXPECTED_UINT))?;
        if *field == "half_open_successes" && n > u64::from(u32::MAX) {
            return Err(bad(EXPECTED_U32));
        }
        numbers[i] = n;
    }
    let epoch = match hash.get(FIELDS.len()).and_then(Option::as_ref) {
        None => 0,
        Some(raw) => lua_uint(raw).ok_or_else(|| ("epoch", Some(printable(raw)), EXPECTED_UINT))?,
    };
    let stored: Vec<Option<String>> = (0..super::super::stored::WINDOW_FIELDS.len())
        .map(|k| {
            hash.get(FIELDS.len() + 1 + k)
                .and_then(Option::as_ref)
                .map(|raw| String::from_utf8_lossy(raw).into_owned())
        })
        .collect();
    let window = super::super::stored::parse_stored_window(&stored).map_err(
        |(field, value, expected)| (field, value.map(|v| printable(v.as_bytes())), expected),
    )?;
    let some = |n: u64| (n != 0).then_some(n);
    Ok(Snapshot {
        state,
        failure_count: numbers[1],
        success_count: numbers[2],
        total_rejections: numbers[3],
        last_failure_ms: some(numbers[4]),
        last_success_ms: some(numbers[5]),
        backoff_ms: numbers[6],
        open_until_ms: numbers[7],
        half_open_successes: u32::try_from(numbers[8]).unwrap_or(u32::MAX),
        generation: numbers[9],
        forced_until_ms: some(numbers[10]),
        probes: Vec::new(),
        epoch,
        window,
        settings: crate::config::AgentSettings::default(),
    })
}

/// Stored text as the scripts' `to_uint` reads it: Lua's `tonumber`
/// (C `strtod`: surrounding white space, a sign, an exponent, `0x` hex),
/// then a whole number from 0 to 2^53 - 1.
pub(super) fn lua_uint(raw: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(raw).ok()?;
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let n = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let n = u64::from_str_radix(hex, 16).map_or(f64::INFINITY, |n| n as f64);
        n
    } else {
        // Rust's float syntax is C's without hex, and it also takes "inf"
        // and "nan", which fail the checks below as in Lua.
        if digits.starts_with(['+', '-']) {
            return None;
        }
        digits.parse::<f64>().ok()?
    };
    let n = if negative { -n } else { n };
    let whole = (0.0..MAX_EXACT).contains(&n) && n.fract() == 0.0;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    whole.then_some(n as u64)
}

/// A stored value for an error, as `load.lua`'s `printable`: its first 64
/// bytes, each outside printable ASCII as `\xNN`.
pub(super) fn printable(raw: &[u8]) -> String {
    raw.iter()
        .take(64)
        .map(|&b| {
            if (32..=126).contains(&b) {
                char::from(b).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_the_scripts_read_them() {
        for (text, n) in [
            ("0", Some(0)),
            ("42", Some(42)),
            (" 42 ", Some(42)),
            ("1e3", Some(1000)),
            ("+7", Some(7)),
            ("-0", Some(0)),
            ("0x10", Some(16)),
            ("9007199254740991", Some(9_007_199_254_740_991)),
            ("9007199254740992", None),
            ("-1", None),
            ("1.5", None),
            ("inf", None),
            ("nan", None),
            ("banana", None),
            ("", None),
            ("0x", None),
            ("--1", None),
            ("1e", None),
        ] {
            assert_eq!(lua_uint(text.as_bytes()), n, "{text:?}");
        }
    }

    #[test]
    fn a_value_prints_its_first_64_bytes_escaping_the_rest_of_ascii() {
        assert_eq!(printable(b"ok"), "ok");
        assert_eq!(printable(b"a\xffb\n"), "a\\xffb\\x0a");
        assert_eq!(printable(&[b'x'; 100]).len(), 64);
    }

    #[test]
    fn the_first_corrupt_field_in_order_is_named() {
        let at = |field: &str| FIELDS.iter().position(|f| *f == field).unwrap();
        let mut hash: Fields = vec![Some(b"0".to_vec()); FIELDS.len() + 1];
        hash[0] = Some(b"closed".to_vec());
        assert!(parse(&hash).is_ok());
        hash[at("generation")] = Some(b"x".to_vec());
        hash[at("success_count")] = None;
        assert_eq!(
            parse(&hash).unwrap_err(),
            ("success_count", None, EXPECTED_UINT)
        );
        hash[at("success_count")] = Some(b"1".to_vec());
        assert_eq!(
            parse(&hash).unwrap_err(),
            ("generation", Some("x".to_owned()), EXPECTED_UINT)
        );
        hash[at("generation")] = Some(b"1".to_vec());
        hash[at("half_open_successes")] = Some(b"4294967296".to_vec());
        assert_eq!(parse(&hash).unwrap_err().2, EXPECTED_U32);
        hash[at("half_open_successes")] = Some(b"0".to_vec());
        hash[FIELDS.len()] = Some(b"-1".to_vec());
        assert_eq!(parse(&hash).unwrap_err().0, "epoch");
    }
}
