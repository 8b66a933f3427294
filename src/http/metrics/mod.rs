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

use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::alerts::DeliveryOutcome;
use crate::breaker::CircuitBreaker;
use crate::model::{CircuitState, Transition};

mod agents;
mod render;
mod series;

pub use agents::{MetricsAgents, MetricsAgentsError};
pub(super) use render::render;

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
    /// the Redis store's feed), so labels name agents the store knows; a forged
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

impl crate::store::StoreObserver for Metrics {
    fn observe_store_op(&self, op: &'static str, elapsed: Duration, failed: bool) {
        self.store_op(op, elapsed, failed);
    }
}
