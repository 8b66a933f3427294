//! The summary printed after criterion's report: each median (criterion's
//! `estimates.json` of this run), its ratio to recloser's of the same kind,
//! the targets, and the cache hits and misses.

use std::path::PathBuf;
use std::time::SystemTime;

use fleet_breaker::breaker::CacheStats;

use crate::peers::{RECLOSER_CLOSED, RECLOSER_OPEN};
use crate::{GROUP, ROWS, Row};

/// The medians of an uncached decision and a bare `EVALSHA` alternated
/// call by call ([`EvalSha::paired`](crate::server::EvalSha::paired)).
pub(crate) struct Paired {
    pub(crate) n: usize,
    pub(crate) decision: std::time::Duration,
    pub(crate) evalsha: std::time::Duration,
    /// Redis's own µs per uncached decision and per bare `EVALSHA`
    /// ([`EvalSha::server_times`](crate::server::EvalSha::server_times));
    /// `None` on a server the bench did not start (`REDIS_URL`), whose
    /// statistics it leaves alone.
    pub(crate) server_times: Option<(f64, f64)>,
}

/// What a row measures, and so which recloser figure it is compared with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An admitted call and its success; compared with `recloser_closed_call`.
    Admit,
    /// A rejection; compared with `recloser_open_reject`.
    Reject,
    /// No breaker (a bare `EVALSHA`, the contention control): no ratio to
    /// recloser's.
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

/// `a / b` as "12.34x" (two decimals, so that a ratio just past its goal
/// does not print as the goal), or "-" when either is missing.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_owned(),
    }
}

fn target(row: &Row, median: Option<f64>, reference: Option<f64>) -> String {
    match (row.max_vs_recloser, median, reference) {
        (Some(t), Some(m), Some(r)) if r > 0.0 => {
            let verdict = if m / r <= t { "met" } else { "MISSED" };
            format!("<= {t:.1}x recloser: {verdict}")
        }
        (Some(t), _, _) => format!("<= {t:.1}x recloser: not measured"),
        _ => String::new(),
    }
}

/// A "goal: met / MISSED" suffix for a ratio `a / b` against `goal`, where
/// `at_least` says which side of it meets it.
fn verdict(a: Option<f64>, b: Option<f64>, goal: f64, at_least: bool) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => {
            let met = if at_least {
                a / b >= goal
            } else {
                a / b <= goal
            };
            let side = if at_least { ">=" } else { "<=" };
            format!(
                " (goal {side} {goal:.1}x: {})",
                if met { "met" } else { "MISSED" }
            )
        }
        _ => String::new(),
    }
}

/// Prints the table, the ratios between fleet-breaker's own rows, and the
/// cache statistics of the cached benches.
pub(crate) fn print(since: SystemTime, seen: &[(&str, CacheStats)], paired: Paired) {
    let median = |name: &str| median_ns(name, since);
    let (closed_ref, open_ref) = (median(RECLOSER_CLOSED), median(RECLOSER_OPEN));
    println!("\nbreaker bench summary (medians from criterion's estimates.json)");
    println!(
        "  {:<34} {:>14}  {:>12}  target",
        "bench", "median", "vs recloser"
    );
    for row in ROWS {
        let m = median(row.name);
        let reference = match row.kind {
            Kind::Admit => closed_ref,
            Kind::Reject => open_ref,
            Kind::RoundTrip => None,
        };
        let vs = match row.kind {
            Kind::RoundTrip => "-".to_owned(),
            _ => ratio(m, reference),
        };
        let shown = m.map_or_else(|| "not run".to_owned(), |m| format!("{m:.1} ns"));
        let line = format!(
            "  {:<34} {shown:>14}  {vs:>12}  {}",
            row.name,
            target(row, m, reference)
        );
        println!("{}", line.trim_end());
    }
    println!("  (vs recloser: admissions / {RECLOSER_CLOSED}, rejections / {RECLOSER_OPEN})");
    let pairs = [
        (crate::UNCACHED, crate::CACHED_CLOSED, None),
        (crate::UNCACHED_OPEN, crate::EVALSHA, Some((1.5, false))),
        (crate::UNCACHED, crate::EVALSHA, None),
        (crate::HANDLE_1, crate::HANDLE_2, Some((1.7, true))),
        (crate::ACQUIRE_1, crate::ACQUIRE_2, None),
        (crate::CONTROL_1, crate::CONTROL_2, None),
    ];
    for (a, b, goal) in pairs {
        let (ma, mb) = (median(a), median(b));
        let verdict = goal.map_or_else(String::new, |(goal, at_least)| {
            verdict(ma, mb, goal, at_least)
        });
        println!("  {a} / {b}: {}{verdict}", ratio(ma, mb));
    }
    println!(
        "  (contended_*_1_thread / contended_*_2_threads: the aggregate speed-up of two threads on one agent; the control's is the machine's)"
    );
    let (decision, trip) = (paired.decision.as_secs_f64(), paired.evalsha.as_secs_f64());
    println!(
        "  paired, alternated call by call ({} each): {} {:.1} us, {} {:.1} us: {}{}",
        paired.n,
        crate::UNCACHED_OPEN,
        decision * 1e6,
        crate::EVALSHA,
        trip * 1e6,
        ratio(Some(decision), Some(trip)),
        verdict(Some(decision), Some(trip), 1.5, false)
    );
    match paired.server_times {
        Some((decision, trip)) => println!(
            "  Redis's own time per call (INFO commandstats, {} each): {} {decision:.1} us, {} {trip:.1} us",
            paired.n,
            crate::UNCACHED_OPEN,
            crate::EVALSHA,
        ),
        None => println!(
            "  Redis's own time per call: not measured (REDIS_URL is set: its statistics are left alone)"
        ),
    }
    for (name, stats) in seen {
        println!(
            "  cache during {name}: {} hits, {} misses",
            stats.hits, stats.misses
        );
    }
}
