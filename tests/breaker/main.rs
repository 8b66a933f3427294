//! The `CircuitBreaker` handle: permits, `call`, metrics, admin actions.

#[path = "../support/mod.rs"]
mod support;

mod handle;
mod original_scenario;
