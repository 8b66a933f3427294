//! The per-agent series of `/metrics`, written straight from a read as the
//! registry encodes them (a [`Collector`]): 10,000 tripped agents are
//! 100,000 series, and a `Family` of each would hash, clone and store every
//! label set first (half the time of such a scrape).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use super::MetricsAgents;
use super::render::Read;
use crate::agent_id::AgentId;
use crate::breaker::{AgentMetrics, WindowView};
use crate::model::CircuitState;

/// The series of the agents `agents` selects from `read`.
#[derive(Debug)]
pub(super) struct AgentSeries {
    pub(super) read: Arc<Read>,
    pub(super) agents: MetricsAgents,
}

fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One gauge per reported agent (corrupt ones have none but
/// `agent_corrupt`): its name, help and value.
type Value<N> = fn(&AgentMetrics) -> N;

impl AgentSeries {
    /// Writes one gauge family: `value` of each readable agent.
    fn family<N: EncodeGaugeValue + Clone + std::fmt::Debug>(
        encoder: &mut DescriptorEncoder,
        agents: &[(&AgentId, &AgentMetrics)],
        name: &str,
        help: &str,
        value: Value<N>,
    ) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (agent, m) in agents.iter().filter(|(_, m)| m.corrupt.is_none()) {
            let labels = [("agent", agent.as_str())];
            ConstGauge::new(value(m)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// Writes one gauge family of the window: `value` of each agent that
    /// has one (a rate policy or a quorum on for it).
    fn window_family<N: EncodeGaugeValue + Clone + std::fmt::Debug>(
        encoder: &mut DescriptorEncoder,
        agents: &[(&AgentId, &AgentMetrics)],
        name: &str,
        help: &str,
        value: fn(&WindowView) -> N,
    ) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (agent, window) in agents
            .iter()
            .filter_map(|(agent, m)| Some((agent, m.window.as_ref()?)))
        {
            let labels = [("agent", agent.as_str())];
            ConstGauge::new(value(window)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Collector for AgentSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (_, agents) = self.read.view(self.agents);
        let mut corrupt = encoder.encode_descriptor(
            "agent_corrupt",
            "1 for an agent whose stored state is corrupt, labelled with the first bad field; \
             an admin reset or force repairs it",
            None,
            MetricType::Gauge,
        )?;
        for (agent, m) in &agents {
            // Its state and counters are unreadable: this series alone,
            // naming the field.
            if let Some(corruption) = &m.corrupt {
                let labels = [("agent", agent.as_str()), ("field", &corruption.field)];
                ConstGauge::new(1_i64).encode(corrupt.encode_family(&labels)?)?;
            }
        }
        let mut states = encoder.encode_descriptor(
            "circuit_state",
            "1 for the agent's current circuit state, else 0",
            None,
            MetricType::Gauge,
        )?;
        for (agent, m) in agents.iter().filter(|(_, m)| m.corrupt.is_none()) {
            for s in CircuitState::ALL {
                let labels = [("agent", agent.as_str()), ("state", s.as_str())];
                let value = i64::from(m.state == s);
                ConstGauge::new(value).encode(states.encode_family(&labels)?)?;
            }
        }
        Self::family(
            &mut encoder,
            &agents,
            "failure_count",
            "Consecutive failures of the agent in the closed state (an open or half-open circuit \
             shows the count that opened it), fleet-wide",
            |m| saturating(m.metrics.failure_count),
        )?;
        Self::family(
            &mut encoder,
            &agents,
            "success_count",
            "Successes of the agent since its last failure (fleet-wide)",
            |m| saturating(m.metrics.success_count),
        )?;
        Self::family(
            &mut encoder,
            &agents,
            "rejections",
            "Calls rejected for the agent since its last reset (fleet-wide)",
            |m| saturating(m.metrics.total_rejections),
        )?;
        Self::family(
            &mut encoder,
            &agents,
            "backoff_seconds",
            "The agent's current backoff",
            |m| m.backoff_seconds,
        )?;
        Self::family(
            &mut encoder,
            &agents,
            "generation",
            "Transitions of the agent's circuit so far",
            |m| saturating(m.generation),
        )?;
        Self::window_family(
            &mut encoder,
            &agents,
            "window_calls",
            "Calls to the agent in its sliding window, fleet-wide (agents with a rate policy \
             or a quorum)",
            |w| saturating(w.calls),
        )?;
        Self::window_family(
            &mut encoder,
            &agents,
            "window_failure_rate",
            "Failed share of the calls to the agent in its sliding window, fleet-wide",
            |w| w.failure_rate,
        )?;
        Self::window_family(
            &mut encoder,
            &agents,
            "window_slow_call_rate",
            "Slow share of the calls to the agent in its sliding window, fleet-wide",
            |w| w.slow_call_rate,
        )
    }
}
