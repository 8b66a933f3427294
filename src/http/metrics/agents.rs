//! [`MetricsAgents`]: which agents get per-agent series in `/metrics`.

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;

use crate::agent_id::AgentId;
use crate::breaker::AgentMetrics;
use crate::router::HealthStatus;

/// Which agents `/metrics` reports series for (`circuit_state`,
/// `failure_count`, `success_count`, `rejections`, `backoff_seconds`,
/// `generation`, `agent_corrupt`, and `window_calls`,
/// `window_failure_rate`, `window_slow_call_rate` for those with a window);
/// the fleet's totals (`agents`,
/// `open_circuits`, ...) always count every agent, and
/// `agents_unreported` says how many were left out.
///
/// Parsed from `not-closed`, `all` or a whole number N (`serve
/// --metrics-agents`).
///
/// ## Behavior
///
/// - [`NotClosed`](Self::NotClosed) (the default): agents open, half-open,
///   forced open or corrupt. A healthy fleet of 100,000 agents scrapes as a
///   few dozen lines; an agent's series appear when it trips and go when it
///   closes, which is what alerts and dashboards look at.
/// - [`All`](Self::All): every agent, as before: about 10 series per agent
///   (30 MB at 50,000 agents).
/// - [`AtMost(n)`](Self::AtMost): at most `n` agents, those not closed
///   first, then closed ones, each in agent id order. A scrape reads those
///   `n` agents and the census (plus the agents set's names when fewer
///   than `n` are tripped), so its cost is bounded by `n` whatever the
///   fleet's size or how many agents trip at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsAgents {
    /// Only agents that are not closed (nor forced closed).
    #[default]
    NotClosed,
    /// Every agent.
    All,
    /// At most this many agents, not closed first.
    AtMost(NonZeroUsize),
}

impl MetricsAgents {
    /// The agents of `health` to report, in agent id order within each kind.
    pub(crate) fn select(self, health: &HealthStatus) -> Vec<(&AgentId, &AgentMetrics)> {
        let not_closed = |m: &AgentMetrics| m.is_corrupt() || !m.state.admits_all();
        match self {
            Self::All => health.agents.iter().collect(),
            Self::NotClosed => health
                .agents
                .iter()
                .filter(|(_, m)| not_closed(m))
                .collect(),
            Self::AtMost(n) => health
                .agents
                .iter()
                .filter(|(_, m)| not_closed(m))
                .chain(health.agents.iter().filter(|(_, m)| !not_closed(m)))
                .take(n.get())
                .collect(),
        }
    }
}

impl fmt::Display for MetricsAgents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotClosed => f.write_str("not-closed"),
            Self::All => f.write_str("all"),
            Self::AtMost(n) => write!(f, "{n}"),
        }
    }
}

/// A [`MetricsAgents`] that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a choice of agents: give not-closed, all, or a whole number from 1")]
pub struct MetricsAgentsError(String);

impl FromStr for MetricsAgents {
    type Err = MetricsAgentsError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim() {
            "not-closed" => Ok(Self::NotClosed),
            "all" => Ok(Self::All),
            n => n
                .parse::<NonZeroUsize>()
                .map(Self::AtMost)
                .map_err(|_| MetricsAgentsError(raw.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_each_choice() {
        for (raw, parsed) in [
            ("not-closed", MetricsAgents::NotClosed),
            ("all", MetricsAgents::All),
            ("25", MetricsAgents::AtMost(NonZeroUsize::new(25).unwrap())),
        ] {
            assert_eq!(raw.parse::<MetricsAgents>().unwrap(), parsed);
            assert_eq!(parsed.to_string(), raw);
        }
        for bad in ["", "0", "-1", "none", "open", "1.5"] {
            let error = bad.parse::<MetricsAgents>().unwrap_err();
            assert!(
                error.to_string().contains("not-closed, all"),
                "{bad}: {error}"
            );
        }
    }
}
