//! The `CircuitBreaker` handle: permits, `call`, metrics, admin actions.

#[path = "../support/mod.rs"]
mod support;

mod agent_handle;
mod force_expiry;
mod handle;
mod original_scenario;
mod try_acquire;
