//! The `CircuitBreaker` handle: permits, `call`, metrics, admin actions.

#[path = "../support/mod.rs"]
mod support;

mod force_expiry;
mod handle;
mod original_scenario;
