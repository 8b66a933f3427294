//! Fault injection (issue 6, DESIGN.md section 5): a fleet of pods routing
//! through a `FailoverRouter` while their Redis is killed, slowed,
//! blackholed, partitioned from one pod or has its connections reset. Every
//! test runs against real `redis-server` processes, on loopback, through the
//! `support::proxy::FaultProxy` where the fault is on the network.
//!
//! The fleet tests take a lock so that they run one at a time: they measure
//! latencies, and eight busy pods per test on a small machine would measure
//! each other. Each prints its figures (`--nocapture` to see them).

#[path = "../support/mod.rs"]
mod support;

mod common;
mod load;
mod outage;
mod partition;
mod proxy;
mod reset;
mod stall;
