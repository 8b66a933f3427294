//! The stores against the model and against each other, on a real Redis.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod differential;
mod failure_count;
mod fleet_races;
mod noscript;
