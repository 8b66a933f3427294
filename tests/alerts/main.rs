//! Alert hooks: transitions POSTed to webhooks, once per URL fleet-wide
//! through Redis consumer groups (on one Redis, a cluster or through
//! Sentinel), or from one breaker's subscription.

#[path = "../support/mod.rs"]
mod support;

mod common;
mod fleet;
mod flush;
mod force_expiry;
mod formats;
mod local;
mod receiver;
mod retries;
mod topologies;
