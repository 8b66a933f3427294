//! How the commands print: the status table and one line per transition.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use super::CliError;
use crate::breaker::{AgentMetrics, WindowView, iso8601};
use crate::model::Transition;
use crate::model::backoff_seconds;

/// Writes `text` to stdout and flushes it.
///
/// `println!` panics when the reader has gone (`fleet-breaker status | head
/// -1`); here a closed stdout ends the command quietly
/// ([`CliError::is_closed_stdout`]), and any other write error is one line.
pub(super) fn out(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::closed_stdout()),
        Err(e) => Err(CliError::new(format!("cannot write to stdout: {e}"))),
    }
}

/// [`out`] of `line` and a newline.
pub(super) fn out_line(line: &str) -> Result<(), CliError> {
    out(&format!("{line}\n"))
}

/// `2026-11-27T05:00:00.000Z agent-1 closed -> open (failure_threshold; backoff 1s, retry in 1.0s)`.
pub(super) fn transition_line(t: &Transition) -> String {
    let mut line = format!(
        "{} {} {} -> {} ({}; generation {}",
        iso8601(t.at_ms),
        t.agent_id,
        t.from,
        t.to,
        t.reason,
        t.generation
    );
    if t.to.as_str().ends_with("open") && t.open_until_ms > t.at_ms {
        let wait = Duration::from_millis(t.open_until_ms - t.at_ms);
        let _ = write!(line, "; retry in {}", seconds(wait.as_secs_f64()));
    }
    line.push(')');
    line
}

fn seconds(s: f64) -> String {
    if s >= 10.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

/// A plain-text table of `agents`, one row each, columns aligned.
///
/// The counters are streaks (DESIGN.md section 2): failures in a row in the
/// closed state, successes since the last failure. They are labelled so, and
/// no "success rate" is made of them: an agent failing one call in ten would
/// show 100% one moment and 0% the next. The window's rates, where an agent
/// has one (`WINDOW`), are rates: of the fleet's calls in the window.
pub(super) fn status_table<'a>(agents: impl IntoIterator<Item = &'a AgentMetrics>) -> String {
    let agents: Vec<&AgentMetrics> = agents.into_iter().collect();
    let mut header = vec![
        "AGENT",
        "STATE",
        "FAILURES IN A ROW",
        "SUCCESSES SINCE LAST FAILURE",
        "REJECTIONS",
        "BACKOFF",
        "RETRY IN",
        "LAST FAILURE",
    ];
    // The window and the settings only when some agent has them: a fleet
    // without trip policies reads as it always did.
    let windows = agents.iter().any(|m| m.window.is_some());
    let settings = agents.iter().any(|m| !m.settings.is_empty());
    if windows {
        header.push("WINDOW");
    }
    if settings {
        header.push("SETTINGS");
    }
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for m in agents {
        let mut row = vec![
            m.agent_id.to_string(),
            m.corrupt
                .as_ref()
                .map_or_else(|| m.state.to_string(), |c| format!("corrupt ({})", c.field)),
            m.metrics.failure_count.to_string(),
            m.metrics.success_count.to_string(),
            m.metrics.total_rejections.to_string(),
            seconds(m.backoff_seconds),
            m.retry_after_seconds
                .map_or_else(|| "-".to_owned(), seconds),
            m.metrics
                .last_failure_time
                .clone()
                .unwrap_or_else(|| "-".to_owned()),
        ];
        if windows {
            row.push(
                m.window
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), window_cell),
            );
        }
        if settings {
            row.push(if m.settings.is_empty() {
                "-".to_owned()
            } else {
                super::configure::settings_line(&m.settings)
            });
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `40 calls 30% failed 0% slow in 10 s`: the fleet's calls in the window.
fn window_cell(w: &WindowView) -> String {
    format!(
        "{} calls {}% failed {}% slow in {}",
        w.calls,
        percent(w.failure_rate),
        percent(w.slow_call_rate),
        seconds(backoff_seconds(w.window_ms))
    )
}

/// A rate as a whole percent, or with one decimal under 10%.
fn percent(rate: f64) -> String {
    let p = rate * 100.0;
    if p > 0.0 && p < 10.0 {
        format!("{p:.1}")
    } else {
        format!("{p:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent_id::AgentId;
    use crate::config::BreakerConfig;
    use crate::model::Snapshot;

    fn fresh(name: &str) -> AgentMetrics {
        let agent = AgentId::new(name).unwrap();
        AgentMetrics::from_snapshot(&agent, &Snapshot::fresh(&BreakerConfig::default()), 0)
    }

    #[test]
    fn a_fresh_agent_shows_a_dash_not_nan() {
        let table = status_table([&fresh("agent-1")]);
        let row = table.lines().nth(1).unwrap();
        assert!(row.starts_with("agent-1  closed"), "{table}");
        assert!(!table.contains("NaN"), "{table}");
        assert!(row.contains(" - "), "{table}");
    }

    #[test]
    fn columns_line_up() {
        let mut long = fresh("a-much-longer-agent-name");
        long.metrics.success_count = 3;
        long.metrics.failure_count = 1;
        let table = status_table([&fresh("a"), &long]);
        let state_col: Vec<usize> = table
            .lines()
            .map(|l| l.find("STATE").or_else(|| l.find("closed")).unwrap())
            .collect();
        assert!(state_col.windows(2).all(|w| w[0] == w[1]), "{table}");
    }

    #[test]
    fn the_counters_are_labelled_as_streaks_and_no_rate_is_shown() {
        // 9 successes since a failure: a rate computed from the streaks
        // would say 100% of an agent that fails one call in ten.
        let mut agent = fresh("agent-1");
        agent.metrics.success_count = 9;
        let table = status_table([&agent]);
        let header = table.lines().next().unwrap();

        assert!(header.contains("FAILURES IN A ROW"), "{table}");
        assert!(header.contains("SUCCESSES SINCE LAST FAILURE"), "{table}");
        assert!(!header.contains("RATE"), "{table}");
        assert!(!table.contains('%'), "{table}");
    }
}
