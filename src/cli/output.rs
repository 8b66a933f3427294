//! How the commands print: the status table and one line per transition.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use super::CliError;
use crate::breaker::{AgentMetrics, iso8601};
use crate::model::Transition;

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
/// show 100% one moment and 0% the next.
pub(super) fn status_table<'a>(agents: impl IntoIterator<Item = &'a AgentMetrics>) -> String {
    let header = [
        "AGENT",
        "STATE",
        "FAILURES IN A ROW",
        "SUCCESSES SINCE LAST FAILURE",
        "REJECTIONS",
        "BACKOFF",
        "RETRY IN",
        "LAST FAILURE",
    ];
    let mut rows: Vec<[String; 8]> = vec![header.map(str::to_owned)];
    for m in agents {
        rows.push([
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
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
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
