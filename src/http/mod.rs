//! The HTTP service (feature `service`): the JSON API of the original
//! specification, server-sent events, Prometheus metrics and the dashboard,
//! as one axum [`Router`].
//!
//! ```no_run
//! use fleet_breaker::CircuitBreaker;
//! use fleet_breaker::http::{self, AdminToken, AppState};
//! use fleet_breaker::router::FailoverRouter;
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let router = FailoverRouter::new(CircuitBreaker::in_memory());
//! let state = AppState::new(router).with_admin_token(AdminToken::new("s3cret").ok());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, http::router(state)).await
//! # }
//! ```
//!
//! [`serve`] serves it with the limits a service facing many clients
//! needs (a connection cap, header, body and idle timeouts) and a shutdown
//! that ends within a grace period, SSE streams included; `fleet-breaker
//! serve` and `demo` use it.
//!
//! ## Routes
//!
//! | method | path | answers |
//! |---|---|---|
//! | GET | `/` | the dashboard (HTML, no outside requests; its scripts and styles under `/assets/`) |
//! | GET | `/api/circuit-breaker/health` | [`HealthStatus`](crate::HealthStatus) JSON; with `?state=open,half_open\|closed\|corrupt&limit=N&after=AGENT` a page of it plus `"next"` (see `listing`) |
//! | GET | `/api/circuit-breaker/health/summary` | the counts alone, [`HealthSummary`] (also `/health?agents=none`) |
//! | GET | `/api/circuit-breaker/failures?limit=N` | recent failures, newest first (`limit` 1 to 1,000, default 20) |
//! | POST | `/api/circuit-breaker/reset/{agent_id}` | admin: closes the circuit, zeroes its counters |
//! | POST | `/api/circuit-breaker/force/{agent_id}` | admin: `{"state": "open"\|"closed"\|"auto", "ttl_seconds": n}` |
//! | GET | `/api/circuit-breaker/config/{agent_id}` | the agent's stored settings and the config it runs under |
//! | PUT | `/api/circuit-breaker/config/{agent_id}` | admin: replaces the agent's settings ([`AgentSettings`](crate::config::AgentSettings) JSON; `{}` clears) |
//! | GET | `/api/circuit-breaker/events` | server-sent events, one `transition` per transition |
//! | GET | `/metrics` | Prometheus text format; per-agent series as [`MetricsAgents`] selects |
//! | GET | `/healthz` | 200 while the process is up |
//! | GET | `/readyz` | 200 when the store answers a ping, else 503 |
//!
//! ## Behavior
//!
//! - Every error is JSON, `{"error": "..."}`, with the status that fits:
//!   400 for bad input (naming the rule broken), 401 for a missing or wrong
//!   admin token, 403 for admin routes when no token is configured, 404 for
//!   an unknown agent or path, 405 naming the allowed method, 413 for a body
//!   over [`MAX_BODY_BYTES`], 503 when the store is unreachable. Store
//!   internals are logged, never sent.
//! - Admin routes compare `Authorization: Bearer <token>` in constant time;
//!   the token is never logged (see [`AdminToken`]).
//! - The state of every route is the fleet's, read from the shared store,
//!   so any number of instances answer alike. Health and metrics share one
//!   read: requests that arrive while it is in flight wait for it.
//! - Answers are gzip-compressed when the request says `Accept-Encoding:
//!   gzip` (not the event stream, which is sent as each event comes).

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use tower_http::compression::CompressionLayer;

use crate::router::{FailoverRouter, HealthSummary};

mod api;
mod auth;
mod census;
mod config;
mod dashboard;
mod error;
mod events;
mod listing;
mod metrics;
mod server;
mod snapshot;

pub use auth::{AdminToken, AdminTokenError};
pub use error::ApiError;
pub use listing::MAX_HEALTH_LIMIT;
pub use metrics::{Metrics, MetricsAgents, MetricsAgentsError};
pub use server::{ServeOptions, serve};
pub use snapshot::DEFAULT_HEALTH_MAX_AGE;

use snapshot::HealthCache;

/// The largest request body accepted (bytes); larger is a 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The default `limit` of `/api/circuit-breaker/failures`.
pub const DEFAULT_FAILURES_LIMIT: usize = 20;

/// The largest `limit` of `/api/circuit-breaker/failures`.
pub const MAX_FAILURES_LIMIT: usize = 1_000;

/// What every route reads: the fleet's router (and through it the breaker
/// and the store), the admin token, and the metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

#[derive(Debug)]
struct StateInner {
    router: FailoverRouter,
    admin_token: Option<AdminToken>,
    metrics: Metrics,
    health: HealthCache,
    metrics_agents: MetricsAgents,
    /// `true` once the service stops: SSE streams end.
    closing: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    /// The state of a service over `router`, with no admin token (admin
    /// routes answer 403) and fresh [`Metrics`].
    #[must_use]
    pub fn new(router: FailoverRouter) -> Self {
        Self {
            inner: Arc::new(StateInner {
                health: HealthCache::new(DEFAULT_HEALTH_MAX_AGE),
                router,
                admin_token: None,
                metrics: Metrics::new(),
                metrics_agents: MetricsAgents::default(),
                closing: tokio::sync::watch::Sender::new(false),
            }),
        }
    }

    /// The same state with `token` guarding the admin routes (`None`
    /// refuses them all).
    #[must_use]
    pub fn with_admin_token(self, token: Option<AdminToken>) -> Self {
        self.map(|inner| inner.admin_token = token)
    }

    /// The same state reporting `metrics` (to share one [`Metrics`] with a
    /// [`MeteredStore`](crate::store::MeteredStore) or webhooks).
    #[must_use]
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        self.map(|inner| inner.metrics = metrics)
    }

    /// The same state keeping one read of the fleet's health for up to
    /// `max_age` after it ends (default [`DEFAULT_HEALTH_MAX_AGE`], 500 ms),
    /// shared by `/api/circuit-breaker/health` and `/metrics`; a transition
    /// this process hears drops it at once. Zero keeps no copy: each request
    /// joins the read in flight, or starts one.
    #[must_use]
    pub fn with_health_max_age(self, max_age: std::time::Duration) -> Self {
        self.map(|inner| inner.health = HealthCache::new(max_age))
    }

    /// The same state reporting per-agent series in `/metrics` for the
    /// agents `agents` selects (default [`MetricsAgents::NotClosed`]).
    #[must_use]
    pub fn with_metrics_agents(self, agents: MetricsAgents) -> Self {
        self.map(|inner| inner.metrics_agents = agents)
    }

    /// The router the routes read.
    #[must_use]
    pub fn router(&self) -> &FailoverRouter {
        &self.inner.router
    }

    /// The metrics `/metrics` reports.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Whether admin routes are enabled (a token is configured).
    #[must_use]
    pub fn admin_enabled(&self) -> bool {
        self.inner.admin_token.is_some()
    }

    /// Ends every SSE stream of this state (and of its clones), open or
    /// opened later: call it when the service stops, so that
    /// [`serve`]'s graceful shutdown is not held by them.
    pub fn close_streams(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves once [`close_streams`](Self::close_streams) is called.
    fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static + use<> {
        let mut closing = self.inner.closing.subscribe();
        async move {
            let _ = closing.wait_for(|closed| *closed).await;
        }
    }

    async fn health(&self) -> Result<std::sync::Arc<snapshot::Health>, ApiError> {
        self.inner.health.get(&self.inner.router).await
    }

    /// The fleet's counts: from the store's census (a few commands however
    /// many agents), else from the shared read.
    async fn summary(&self) -> Result<HealthSummary, ApiError> {
        if let Some(summary) = self.census_summary().await? {
            return Ok(summary);
        }
        Ok(self.health().await?.status.summary())
    }

    /// Reads of the whole fleet's state made so far (shared by requests).
    fn health_reads(&self) -> u64 {
        self.inner.health.reads()
    }

    fn metrics_agents(&self) -> MetricsAgents {
        self.inner.metrics_agents
    }

    fn changed(&self) {
        self.inner.health.invalidate();
    }

    fn admin_token(&self) -> Option<&AdminToken> {
        self.inner.admin_token.as_ref()
    }

    fn map(self, edit: impl FnOnce(&mut StateInner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| StateInner {
            router: shared.router.clone(),
            admin_token: shared.admin_token.clone(),
            metrics: shared.metrics.clone(),
            health: HealthCache::new(shared.health.max_age()),
            metrics_agents: shared.metrics_agents,
            closing: shared.closing.clone(),
        });
        edit(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }
}

/// Every route of the service over `state`; see the [module docs](self).
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/health", get(api::health))
        .route("/health/summary", get(api::health_summary))
        .route("/failures", get(api::failures))
        .route("/reset/{agent_id}", post(api::reset))
        .route("/force/{agent_id}", post(api::force))
        .route("/config/{agent_id}", get(config::show).put(config::replace))
        .route("/events", get(events::stream));
    let routes = Router::new()
        .nest("/api/circuit-breaker", api)
        .route("/metrics", get(metrics::render))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .merge(dashboard::routes())
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    // Around the whole router, not each route: a 405's `Allow` header is
    // added by the route itself, after any route layer has run.
    // Compression outermost, so that error bodies are compressed too; its
    // default predicate leaves `text/event-stream` alone, so SSE streams.
    Router::new()
        .fallback_service(routes)
        .layer(middleware::map_response(error::json_errors))
        .layer(CompressionLayer::new().gzip(true))
}
