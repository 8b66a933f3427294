//! How the commands print: the status table and one line per transition.

use std::fmt::Write as _;

use crate::breaker::{AgentMetrics, iso8601};
use crate::model::Transition;

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

use std::time::Duration;

fn seconds(s: f64) -> String {
    if s >= 10.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

/// The success rate of an agent's counters, or `-` when it has had no call
/// since its last failure streak began (no NaN).
fn success_rate(m: &AgentMetrics) -> String {
    let total = m.metrics.success_count + m.metrics.failure_count;
    if total == 0 {
        "-".to_owned()
    } else {
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let rate = m.metrics.success_count as f64 / total as f64;
        format!("{:.0}%", rate * 100.0)
    }
}

/// A plain-text table of `agents`, one row each, columns aligned.
pub(super) fn status_table<'a>(agents: impl IntoIterator<Item = &'a AgentMetrics>) -> String {
    let header = [
        "AGENT",
        "STATE",
        "FAILURES",
        "SUCCESSES",
        "SUCCESS RATE",
        "REJECTIONS",
        "BACKOFF",
        "RETRY IN",
        "LAST FAILURE",
    ];
    let mut rows: Vec<[String; 9]> = vec![header.map(str::to_owned)];
    for m in agents {
        rows.push([
            m.agent_id.to_string(),
            m.corrupt
                .as_ref()
                .map_or_else(|| m.state.to_string(), |c| format!("corrupt ({})", c.field)),
            m.metrics.failure_count.to_string(),
            m.metrics.success_count.to_string(),
            success_rate(m),
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
        assert!(table.contains("75%"), "{table}");
    }
}
