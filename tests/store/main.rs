//! The stores against the model and against each other, on a real Redis.

#[path = "../support/mod.rs"]
mod support;

mod backend;
mod bad_input;
mod census;
mod corrupt;
mod differential;
mod failure_count;
mod failures_journal;
mod feed;
mod fleet_config;
mod fleet_races;
mod noscript;
mod policies;
