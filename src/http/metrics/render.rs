//! `GET /metrics` itself: the registry of this process's counters, the
//! fleet's state from the shared read (its per-agent series those
//! [`MetricsAgents`] selects), and the breaker's own figures.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::MetricsAgents;
use super::series::AgentSeries;
use crate::agent_id::AgentId;
use crate::breaker::AgentMetrics;
use crate::http::census::NotClosed;
use crate::http::snapshot::Health;
use crate::http::{ApiError, AppState};
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

/// What a scrape reports the fleet from.
#[derive(Debug)]
pub(super) enum Read {
    /// The census and the agents selected, read fresh (a bounded
    /// selection, on a store with a census).
    Census(NotClosed),
    /// The shared read of every agent.
    Everything(Arc<Health>),
}

impl Read {
    /// The counts and the agents to report series for.
    pub(super) fn view(
        &self,
        agents: MetricsAgents,
    ) -> (HealthSummary, Vec<(&AgentId, &AgentMetrics)>) {
        match self {
            Self::Census(read) => (read.summary.clone(), read.agents.iter().collect()),
            Self::Everything(health) => (health.status.summary(), agents.select(&health.status)),
        }
    }
}

/// The census when the selection is bounded (`not-closed` or N) and the
/// store has one (a scrape then reads the agents it reports only), else
/// the shared read of every agent.
async fn read(state: &AppState) -> Result<Read, ApiError> {
    let bounded = match state.metrics_agents() {
        MetricsAgents::NotClosed => Some(None),
        MetricsAgents::AtMost(n) => Some(Some(n)),
        MetricsAgents::All => None,
    };
    if let Some(limit) = bounded
        && let Some(read) = state.census_metrics(limit).await?
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
            let read = Arc::new(read);
            let (summary, selected) = read.view(state.metrics_agents());
            gauge(
                &mut registry,
                "store_up",
                "Whether the fleet's state could be read",
                1,
            );
            let unreported = summary.total_agents.saturating_sub(selected.len());
            drop(selected);
            registry.register_collector(Box::new(AgentSeries {
                read: Arc::clone(&read),
                agents: state.metrics_agents(),
            }));
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

    let agreement = breaker.config_agreement();
    gauge(
        &mut registry,
        "config_mismatch",
        "1 while another pod sharing the store runs with a different process-wide breaker \
         config (see config_mismatch in /api/circuit-breaker/health/summary), else 0",
        i64::from(agreement.is_mismatch()),
    );
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
