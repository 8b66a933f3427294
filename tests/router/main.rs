//! The `FailoverRouter`: priority failover, its limits, health and journal,
//! on the embedded store and across two pods sharing one Redis.

#[path = "../support/mod.rs"]
mod support;

mod common;
mod failover;
mod fleet;
mod health;
mod judging;
mod panic_mode;
mod timing;
#[cfg(feature = "tower")]
mod tower;
