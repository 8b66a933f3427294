#![doc = include_str!("../README.md")]

pub mod agent_id;
#[cfg(feature = "service")]
pub mod alerts;
pub mod breaker;
mod cache;
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

pub use agent_id::{AgentId, AgentIdError};
pub use breaker::{
    AgentMetrics, BreakerError, CallError, CircuitBreaker, CircuitBreakerBuilder, Counters, Permit,
    RejectCause, Rejected, StorePolicy, StoreStats, StoreStatus,
};
pub use clock::{Clock, CoarseClock, ManualClock, SystemClock, TickingClock};
pub use config::{BreakerConfig, BreakerConfigBuilder, ConfigError};
pub use model::{CircuitState, ForceMode, Outcome, Snapshot, Transition, TransitionReason};
pub use router::{
    AllAgentsFailed, FailoverRouter, FailoverRouterBuilder, HealthStatus, RouteError, Routed,
};
pub use store::{BreakerStore, Corruption, MemoryStore, RedisStore, RedisTarget, StoreError};

/// What tests reach inside the crate for (the **`testing`** feature, off by
/// default; not part of the stable API): the local cache a breaker keeps in
/// front of a Redis store, and the strict decoders of the pub/sub messages.
#[cfg(feature = "testing")]
pub mod testing {
    pub use crate::cache::Cache;
    pub use crate::store::redis::watch::message::{
        CountNews, MAX_MESSAGE_BYTES, MessageError, decode_counts, decode_transition,
    };
}

/// The examples of docs/operations.md, compiled with the doctests (the
/// README's are, as the crate's documentation above).
#[cfg(doctest)]
#[doc = include_str!("../docs/operations.md")]
struct OperationsDoctests;
