//! The summary printed after criterion's report: each median (criterion's
//! `estimates.json` of this run), its ratio to recloser's of the same kind,
//! the targets, and the cache hits and misses.

use std::path::PathBuf;
use std::time::SystemTime;

use fleet_breaker::breaker::CacheStats;

use crate::peers::{RECLOSER_CLOSED, RECLOSER_OPEN};
use crate::{GROUP, ROWS, Row};

/// What a row measures, and so which recloser figure it is compared with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An admitted call and its success; compared with `recloser_closed_call`.
    Admit,
    /// A rejection; compared with `recloser_open_reject`.
    Reject,
    /// A bare `EVALSHA`: no breaker, so no ratio to recloser's.
    RoundTrip,
}

/// Where criterion writes its estimates (its own order of preference, with
/// `cargo metadata` replaced by the default target directory).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
            PathBuf::from,
        )
        .join("criterion")
}

/// The median (ns) criterion estimated in this run, if it ran the bench.
fn median_ns(name: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_dir()
        .join(GROUP)
        .join(name)
        .join("new/estimates.json");
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since);
    let text = std::fs::read_to_string(&path).ok().filter(|_| fresh)?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// `a / b` as "12.3x", or "-" when either is missing.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}x", a / b),
        _ => "-".to_owned(),
    }
}

fn target(row: &Row, median: Option<f64>) -> &'static str {
    match (row.target_ns, median) {
        (Some(t), Some(m)) if m <= t => "<= 100 ns: met",
        (Some(_), Some(_)) => "<= 100 ns: MISSED",
        _ => "",
    }
}

/// Prints the table, the ratios between fleet-breaker's own rows, and the
/// cache statistics of the cached benches.
pub(crate) fn print(since: SystemTime, seen: &[(&str, CacheStats)]) {
    let median = |name: &str| median_ns(name, since);
    let (closed_ref, open_ref) = (median(RECLOSER_CLOSED), median(RECLOSER_OPEN));
    println!("\nbreaker bench summary (medians from criterion's estimates.json)");
    println!(
        "  {:<34} {:>14}  {:>12}  target",
        "bench", "median", "vs recloser"
    );
    for row in ROWS {
        let m = median(row.name);
        let vs = match row.kind {
            Kind::Admit => ratio(m, closed_ref),
            Kind::Reject => ratio(m, open_ref),
            Kind::RoundTrip => "-".to_owned(),
        };
        let shown = m.map_or_else(|| "not run".to_owned(), |m| format!("{m:.1} ns"));
        let line = format!(
            "  {:<34} {shown:>14}  {vs:>12}  {}",
            row.name,
            target(row, m)
        );
        println!("{}", line.trim_end());
    }
    println!("  (vs recloser: admissions / {RECLOSER_CLOSED}, rejections / {RECLOSER_OPEN})");
    let pairs = [
        (crate::UNCACHED, crate::CACHED_CLOSED, Some(200.0)),
        (crate::UNCACHED_OPEN, crate::EVALSHA, None),
        (crate::UNCACHED, crate::EVALSHA, None),
    ];
    for (a, b, goal) in pairs {
        let (ma, mb) = (median(a), median(b));
        let verdict = match (ma, mb, goal) {
            (Some(ma), Some(mb), Some(goal)) if ma / mb >= goal => " (target >= 200x: met)",
            (Some(_), Some(_), Some(_)) => " (target >= 200x: MISSED)",
            _ => "",
        };
        println!("  {a} / {b}: {}{verdict}", ratio(ma, mb));
    }
    for (name, stats) in seen {
        println!(
            "  cache during {name}: {} hits, {} misses",
            stats.hits, stats.misses
        );
    }
}
