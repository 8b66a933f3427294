//! Fleet coherence: many pods, one Redis, local caches fed by pub/sub.

#[path = "../support/mod.rs"]
mod support;

mod fleet;
mod flush;
mod forged;
mod local_counts;
mod reconnect;
