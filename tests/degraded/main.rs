//! Degraded mode (issue 6, DESIGN.md section 5): after repeated
//! store-unavailable errors a pod stops calling Redis, decides by its
//! `StorePolicy` at no latency, probes Redis in the background, and on its
//! return resyncs and leaves degraded mode. Against real `redis-server`
//! processes the tests kill, restart or cut off through `FaultProxy`.

#[path = "../support/mod.rs"]
mod support;

mod common;
mod embedded;
mod policy;
mod recovery;
