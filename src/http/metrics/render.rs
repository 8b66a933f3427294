//! `GET /metrics` itself: the registry of this process's counters, the
//! fleet's state from the shared read (its per-agent series those
//! [`MetricsAgents`] selects), and the breaker's own figures.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Labels, MetricsAgents};
use crate::agent_id::AgentId;
use crate::breaker::AgentMetrics;
use crate::http::census::NotClosed;
use crate::http::snapshot::Health;
use crate::http::{ApiError, AppState};
use crate::model::CircuitState;
use crate::router::HealthSummary;

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g = Gauge::<i64>::default();
    g.set(value);
    registry.register(name, help, g);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What a scrape reports the fleet from.
enum Read {
    /// The census and the agents not closed, read fresh (the default
    /// selection, on a store with a census).
    Census(NotClosed),
    /// The shared read of every agent.
    Everything(Arc<Health>),
}

impl Read {
    /// The counts and the agents to report series for.
    fn view(&self, agents: MetricsAgents) -> (HealthSummary, Vec<(&AgentId, &AgentMetrics)>) {
        match self {
            Self::Census(read) => (read.summary.clone(), read.agents.iter().collect()),
            Self::Everything(health) => (health.status.summary(), agents.select(&health.status)),
        }
    }
}

/// The census when the selection is the default and the store has one
/// (a scrape then reads the tripped agents only), else the shared read.
async fn read(state: &AppState) -> Result<Read, ApiError> {
    if state.metrics_agents() == MetricsAgents::NotClosed
        && let Some(read) = state.census_not_closed().await?
    {
        return Ok(Read::Census(read));
    }
    Ok(Read::Everything(state.health().await?))
}

/// `GET /metrics`.
pub(in crate::http) async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let mut registry = Registry::with_prefix("fleet_breaker");
    state.metrics().register(&mut registry);
    let router = state.router();
    let breaker = router.breaker();

    match read(&state).await {
        Ok(read) => {
            let (summary, selected) = read.view(state.metrics_agents());
            gauge(
                &mut registry,
                "store_up",
                "Whether the fleet's state could be read",
                1,
            );
            let states = Family::<Labels, Gauge>::default();
            let failures = Family::<Labels, Gauge>::default();
            let successes = Family::<Labels, Gauge>::default();
            let rejections = Family::<Labels, Gauge>::default();
            let backoff = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
            let generation = Family::<Labels, Gauge>::default();
            let corrupt = Family::<Labels, Gauge>::default();
            let unreported = summary.total_agents.saturating_sub(selected.len());
            for (agent, m) in selected {
                let id = vec![("agent", agent.to_string())];
                if let Some(corruption) = &m.corrupt {
                    // Its state and counters are unreadable: this series
                    // alone, naming the field.
                    let mut labels = id;
                    labels.push(("field", corruption.field.clone()));
                    corrupt.get_or_create(&labels).set(1);
                    continue;
                }
                for s in CircuitState::ALL {
                    let mut labels = id.clone();
                    labels.push(("state", s.as_str().to_owned()));
                    states.get_or_create(&labels).set(i64::from(m.state == s));
                }
                failures
                    .get_or_create(&id)
                    .set(saturating_i64(m.metrics.failure_count));
                successes
                    .get_or_create(&id)
                    .set(saturating_i64(m.metrics.success_count));
                rejections
                    .get_or_create(&id)
                    .set(saturating_i64(m.metrics.total_rejections));
                backoff.get_or_create(&id).set(m.backoff_seconds);
                generation
                    .get_or_create(&id)
                    .set(saturating_i64(m.generation));
            }
            registry.register(
                "agent_corrupt",
                "1 for an agent whose stored state is corrupt, labelled with the first bad field; \
                 an admin reset or force repairs it",
                corrupt,
            );
            registry.register(
                "circuit_state",
                "1 for the agent's current circuit state, else 0",
                states,
            );
            registry.register(
                "failure_count",
                "Consecutive failures of the agent in the closed state (an open or half-open circuit shows the count that opened it), fleet-wide",
                failures,
            );
            registry.register(
                "success_count",
                "Successes of the agent since its last failure (fleet-wide)",
                successes,
            );
            registry.register(
                "rejections",
                "Calls rejected for the agent since its last reset (fleet-wide)",
                rejections,
            );
            registry.register("backoff_seconds", "The agent's current backoff", backoff);
            registry.register(
                "generation",
                "Transitions of the agent's circuit so far",
                generation,
            );
            let total = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            gauge(
                &mut registry,
                "agents_unreported",
                "Agents whose per-agent series this scrape leaves out (serve --metrics-agents); \
                 the totals count them all",
                total(unreported),
            );
            gauge(
                &mut registry,
                "agents",
                "Agents known to the fleet",
                total(summary.total_agents),
            );
            gauge(
                &mut registry,
                "open_circuits",
                "Circuits open or forced open",
                total(summary.open_circuits),
            );
            gauge(
                &mut registry,
                "half_open_circuits",
                "Circuits half-open",
                total(summary.half_open_circuits),
            );
            gauge(
                &mut registry,
                "healthy_agents",
                "Circuits closed or forced closed",
                total(summary.healthy_agents),
            );
            gauge(
                &mut registry,
                "corrupt_agents",
                "Agents whose stored state is corrupt",
                total(summary.corrupt_agents),
            );
            counter(
                &mut registry,
                "routing_events",
                "Routing decisions made by every pod",
                summary.routing_events,
            );
        }
        Err(error) => {
            tracing::warn!(
                error = error.message(),
                "metrics: the fleet's state could not be read"
            );
            gauge(
                &mut registry,
                "store_up",
                "Whether the fleet's state could be read",
                0,
            );
        }
    }

    counter(
        &mut registry,
        "health_reads",
        "Reads of the whole fleet's state this process made for /metrics and the health API \
         (concurrent requests share one)",
        state.health_reads(),
    );
    gauge(
        &mut registry,
        "store_degraded",
        "1 while this process is in degraded mode (deciding without the store)",
        i64::from(breaker.is_degraded()),
    );
    let stats = breaker.store_stats();
    counter(
        &mut registry,
        "store_unavailable_errors",
        "Store calls of this process that found the store unreachable or slow",
        stats.errors,
    );
    counter(
        &mut registry,
        "degraded_entered",
        "Times this process entered degraded mode",
        stats.degraded_entered,
    );
    counter(
        &mut registry,
        "degraded_left",
        "Times this process left degraded mode",
        stats.degraded_left,
    );
    counter(
        &mut registry,
        "journal_entries_skipped",
        "Malformed entries of the failures stream that this process's reads skipped",
        router.failures_skipped(),
    );
    if let Some(cache) = breaker.cache_stats() {
        counter(
            &mut registry,
            "cache_hits",
            "Calls this process decided and settled with no store round trip",
            cache.hits,
        );
        counter(
            &mut registry,
            "cache_misses",
            "Decisions this process sent to the store",
            cache.misses,
        );
    }

    let mut body = String::new();
    if let Err(error) = encode(&mut body, &registry) {
        tracing::error!(%error, "metrics: encoding failed");
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}
