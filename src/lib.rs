//! fleet-breaker: crate docs (written with the breaker).

pub mod agent_id;
pub mod clock;
pub mod config;
pub mod model;
pub mod store;

pub use agent_id::{AgentId, AgentIdError};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{BreakerConfig, BreakerConfigBuilder, ConfigError};
pub use model::{CircuitState, ForceMode, Outcome, Snapshot, Transition, TransitionReason};
pub use store::{BreakerStore, MemoryStore, RedisStore, StoreError};
