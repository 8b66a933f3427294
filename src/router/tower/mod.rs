//! `tower` middleware (cargo feature `tower`): put breaker-guarded agents
//! behind a standard [`Service`](::tower::Service) stack (axum, tonic,
//! reqwest-middleware, hyper).
//!
//! - [`CircuitBreakerLayer`] / [`CircuitBreakerService`]: one agent. Each
//!   call takes a breaker permit first; a rejection is
//!   [`CallError::Rejected`](crate::CallError::Rejected), kept apart from
//!   the inner service's error ([`CallError::Inner`](crate::CallError::Inner)).
//! - [`FailoverService`]: several agents in priority order, through a
//!   [`FailoverRouter`](super::FailoverRouter); the inner service takes
//!   `(AgentId, Request)` and the request is cloned per attempt.
//!
//! ```
//! use fleet_breaker::{AgentId, CallError, CircuitBreaker};
//! use fleet_breaker::router::tower::CircuitBreakerLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let agent = AgentId::new("agent-1").unwrap();
//! let layer = CircuitBreakerLayer::new(CircuitBreaker::in_memory(), agent);
//! let service = layer.layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) }));
//! assert_eq!(service.oneshot(41).await.unwrap(), 42);
//! # }
//! ```

mod breaker;
mod failover;

pub use breaker::{CircuitBreakerLayer, CircuitBreakerService};
pub use failover::FailoverService;

use std::future::Future;
use std::pin::Pin;

/// The boxed future of the services of this module.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
