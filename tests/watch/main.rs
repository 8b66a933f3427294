//! The pub/sub watcher (`fleet_breaker::watch`) against a real Redis:
//! delivery, ordering, garbage, reconnection with replay, Redis restarts,
//! silent deaths; and the message decoders under arbitrary input.

#[path = "../support/mod.rs"]
mod support;

mod common;
mod decode;
mod delivery;
mod garbage;
mod heartbeat;
mod outages;
mod unverified;
