#![doc = include_str!("../README.md")]

pub mod agent_id;
#[cfg(feature = "service")]
pub mod alerts;
pub mod breaker;
pub mod cache;
#[cfg(feature = "service")]
pub mod cli;
pub mod clock;
pub mod config;
#[cfg(feature = "service")]
pub mod http;
pub mod model;
pub mod router;
pub mod store;
mod task;
pub mod watch;

pub use agent_id::{AgentId, AgentIdError};
pub use breaker::{
    AgentMetrics, BreakerError, CallError, CircuitBreaker, CircuitBreakerBuilder, Counters, Permit,
    RejectCause, Rejected, StorePolicy, StoreStats, StoreStatus,
};
pub use clock::{Clock, CoarseClock, ManualClock, SystemClock};
pub use config::{BreakerConfig, BreakerConfigBuilder, ConfigError};
pub use model::{CircuitState, ForceMode, Outcome, Snapshot, Transition, TransitionReason};
pub use router::{
    AllAgentsFailed, FailoverRouter, FailoverRouterBuilder, HealthStatus, RouteError, Routed,
};
pub use store::{BreakerStore, Corruption, MemoryStore, RedisStore, RedisTarget, StoreError};

/// The examples of docs/operations.md, compiled with the doctests (the
/// README's are, as the crate's documentation above).
#[cfg(doctest)]
#[doc = include_str!("../docs/operations.md")]
struct OperationsDoctests;
