//! `GET /metrics`: Prometheus text format, with the Prometheus project's
//! Rust client (`prometheus-client`).
//!
//! Two kinds of series:
//!
//! - **Fleet state, read at scrape time** from the shared store (the same
//!   read as `/api/circuit-breaker/health`): each agent's state, counters,
//!   backoff and generation, and the fleet's totals. Every instance that
//!   serves `/metrics` reports the same values.
//! - **This process's own counters**: transitions and probe outcomes it
//!   observed on its subscription, the latency and errors of its store
//!   calls (through a [`MeteredStore`](crate::store::MeteredStore)), its local cache's hits and misses,
//!   its degraded mode, and its webhook deliveries. Scrape every pod for
//!   these.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use futures::StreamExt;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::AppState;
use crate::alerts::DeliveryOutcome;
use crate::breaker::CircuitBreaker;
use crate::model::{CircuitState, Transition};

type Labels = Vec<(&'static str, String)>;

/// The series `/metrics` reports from this process's own counting, beside
/// the fleet's state it reads at scrape time.
///
/// - **Fleet state, read at scrape time** from the shared store (the same
///   read as `/api/circuit-breaker/health`): each agent's state, counters,
///   backoff and generation, and the fleet's totals. Every instance that
///   serves `/metrics` reports the same values.
/// - **This process's own counters**, kept here: transitions and probe
///   outcomes it observed ([`watch`](Self::watch)), the latency and errors
///   of its store calls (through a [`MeteredStore`](crate::store::MeteredStore)),
///   its webhook deliveries ([`webhook_delivery`](Self::webhook_delivery));
///   and, read from the breaker at scrape time, its degraded mode and its
///   cache's hits and misses. Scrape every pod for these.
///
/// Cheap to clone: clones count into the same series.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Counters>,
}

struct Counters {
    transitions: Family<Labels, Counter>,
    probe_outcomes: Family<Labels, Counter>,
    store_op_seconds: Family<Labels, Histogram>,
    store_op_errors: Family<Labels, Counter>,
    webhook_deliveries: Family<Labels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Metrics {
    /// Fresh counters, all zero.
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Counters {
                transitions: Family::default(),
                probe_outcomes: Family::default(),
                store_op_seconds: Family::new_with_constructor(latency_histogram),
                store_op_errors: Family::default(),
                webhook_deliveries: Family::default(),
            }),
        }
    }

    /// Counts `transition`, and a probe outcome when it ends a half-open
    /// circuit (closed: the probes succeeded; open: one failed).
    pub fn observe_transition(&self, transition: &Transition) {
        let agent = transition.agent_id.to_string();
        self.inner
            .transitions
            .get_or_create(&vec![
                ("agent", agent.clone()),
                ("from", transition.from.as_str().to_owned()),
                ("to", transition.to.as_str().to_owned()),
            ])
            .inc();
        if transition.from == CircuitState::HalfOpen {
            let outcome = match transition.to {
                CircuitState::Closed => Some("success"),
                CircuitState::Open => Some("failure"),
                _ => None,
            };
            if let Some(outcome) = outcome {
                self.inner
                    .probe_outcomes
                    .get_or_create(&vec![("agent", agent), ("outcome", outcome.to_owned())])
                    .inc();
            }
        }
    }

    /// Counts every transition `breaker` delivers from now on, in a task
    /// that ends with the breaker's subscription.
    ///
    /// The `agent` label rule: on Redis the breaker delivers only
    /// transitions its watcher confirmed against the agent's hash (see
    /// [`crate::watch`]), so labels name agents the store knows; a forged
    /// `PUBLISH` with a made-up agent id makes no series.
    pub fn watch(&self, breaker: &CircuitBreaker) {
        let metrics = self.clone();
        let mut transitions = Box::pin(breaker.subscribe());
        tokio::spawn(async move {
            while let Some(transition) = transitions.next().await {
                metrics.observe_transition(&transition);
            }
        });
    }

    /// Records one store call `op` that took `elapsed`, and whether it failed.
    fn store_op(&self, op: &'static str, elapsed: Duration, failed: bool) {
        let labels = vec![("op", op.to_owned())];
        self.inner
            .store_op_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if failed {
            self.inner.store_op_errors.get_or_create(&labels).inc();
        }
    }

    /// Counts one webhook delivery attempt to `url`.
    /// (Give it to [`WebhooksBuilder::observer`](crate::alerts::WebhooksBuilder::observer).)
    pub fn webhook_delivery(&self, url: &str, outcome: DeliveryOutcome) {
        self.inner
            .webhook_deliveries
            .get_or_create(&vec![
                ("url", url.to_owned()),
                ("outcome", outcome.as_str().to_owned()),
            ])
            .inc();
    }

    fn register(&self, registry: &mut Registry) {
        let c = &self.inner;
        registry.register(
            "transitions",
            "Transitions this process observed, by agent and states",
            c.transitions.clone(),
        );
        registry.register(
            "probe_outcomes",
            "Half-open circuits this process saw close (success) or reopen (failure)",
            c.probe_outcomes.clone(),
        );
        registry.register(
            "store_op_duration_seconds",
            "Latency of this process's store calls, by operation",
            c.store_op_seconds.clone(),
        );
        registry.register(
            "store_op_errors",
            "This process's store calls that failed, by operation",
            c.store_op_errors.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts of this process, by URL and outcome",
            c.webhook_deliveries.clone(),
        );
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

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

/// `GET /metrics`.
pub(super) async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let mut registry = Registry::with_prefix("fleet_breaker");
    state.metrics().register(&mut registry);
    let router = state.router();
    let breaker = router.breaker();

    match state.health().await {
        Ok(health) => {
            let health = &health.status;
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
            for (agent, m) in &health.agents {
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
                "agents",
                "Agents known to the fleet",
                total(health.total_agents),
            );
            gauge(
                &mut registry,
                "open_circuits",
                "Circuits open or forced open",
                total(health.open_circuits),
            );
            gauge(
                &mut registry,
                "half_open_circuits",
                "Circuits half-open",
                total(health.half_open_circuits),
            );
            gauge(
                &mut registry,
                "healthy_agents",
                "Circuits closed or forced closed",
                total(health.healthy_agents),
            );
            gauge(
                &mut registry,
                "corrupt_agents",
                "Agents whose stored state is corrupt",
                total(health.corrupt_agents),
            );
            counter(
                &mut registry,
                "routing_events",
                "Routing decisions made by every pod",
                health.routing_events,
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

impl crate::store::StoreObserver for Metrics {
    fn observe_store_op(&self, op: &'static str, elapsed: Duration, failed: bool) {
        self.store_op(op, elapsed, failed);
    }
}
