//! The breaker on a real Redis Cluster that the tests start: the fleet
//! races and the coherence of the core issue with agents on every master,
//! and a master killed under the fleet.

#[path = "../support/mod.rs"]
mod support;

mod census;
mod common;
mod failover;
mod functions;
mod policies;
mod races;
mod replay;
mod spread;
