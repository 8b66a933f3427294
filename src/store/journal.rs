//! [`RoutingJournal`]: the fleet-wide record a router keeps beside the
//! breaker state: recent routing failures and the count of routing decisions.
//!
//! The trait is the router's: a [`FailoverRouter`](crate::router::FailoverRouter)
//! built on a [`CircuitBreaker`](crate::CircuitBreaker) asks the breaker's
//! store for one ([`BreakerStore::journal`](crate::store::BreakerStore::journal)),
//! so a fleet on Redis shares it with no wiring, and keeps its own in memory
//! otherwise. It is defined here, beside the store seam, because the stores
//! implement it: defined in `router/`, it would make the stores depend on
//! the router, which depends on the breaker, which depends on the stores.
//!
//! ## Redis layout
//!
//! | key | type | holds |
//! |---|---|---|
//! | `PREFIX:failures` | stream, capped (`XADD MAXLEN ~ cap`) | one entry per failed call: `task_id`, `agent_id`, `reason`, `time_ms`, `instance_id` |
//! | `PREFIX:routing_events` | string (integer, `INCRBY`) | routing decisions made by every pod |

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::agent_id::AgentId;
use crate::clock::iso8601;

/// The default cap of the recent-failures record (entries).
pub const DEFAULT_FAILURES_CAP: usize = 1_000;

/// One failed call of a routed task, as kept in the recent-failures record.
///
/// ```json
/// {"task_id": "task-7", "agent_id": "agent-1", "reason": "connection refused",
///  "time_ms": 1700000000000, "instance_id": "pod-a"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// The task that was being routed.
    pub task_id: String,
    /// The agent whose call failed.
    pub agent_id: AgentId,
    /// Why: the call's error, `timed out after ...`, or `slow call ...`.
    pub reason: String,
    /// When the failure was seen, ms since the epoch, by the pod's clock.
    pub time_ms: u64,
    /// The pod that saw it ([`CircuitBreaker::instance_id`](crate::CircuitBreaker::instance_id)).
    pub instance_id: String,
}

impl FailureRecord {
    /// [`time_ms`](Self::time_ms) as ISO-8601 UTC.
    #[must_use]
    pub fn time(&self) -> String {
        iso8601(self.time_ms)
    }
}

/// A fleet-wide journal of routing: recent failures and a routing-decision
/// counter; a store offers its own through [`BreakerStore::journal`](super::BreakerStore::journal).
///
/// ## Behavior
///
/// - [`push_failure`](Self::push_failure) appends to a record capped at
///   about `cap` entries: exactly `cap` in memory; in Redis the stream is
///   trimmed with `MAXLEN ~`, in whole stream nodes, so it may briefly hold
///   somewhat more (never fewer).
/// - [`recent_failures`](Self::recent_failures) reads newest first. A
///   record it cannot read is skipped (and counted:
///   [`failures_skipped`](Self::failures_skipped)), never an error: one bad
///   entry does not hide the others.
/// - The routing-decision counter only grows; [`add_routing_events`](Self::add_routing_events)
///   is one atomic increment (`INCRBY` on Redis), so pods can batch theirs.
#[async_trait]
pub trait RoutingJournal: Debug + Send + Sync {
    /// Appends `record`, keeping about the newest `cap` records.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or refuses the write.
    async fn push_failure(&self, record: &FailureRecord, cap: usize) -> Result<(), StoreError>;

    /// Up to `limit` records, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds a record this
    /// crate cannot read.
    async fn recent_failures(&self, limit: usize) -> Result<Vec<FailureRecord>, StoreError>;

    /// Adds `n` routing decisions to the fleet-wide count; returns the new total.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or refuses the write.
    async fn add_routing_events(&self, n: u64) -> Result<u64, StoreError>;

    /// The fleet-wide count of routing decisions flushed so far.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds a bad count.
    async fn routing_events(&self) -> Result<u64, StoreError>;

    /// Malformed failure records (written by something else, or edited by
    /// hand) that [`recent_failures`](Self::recent_failures) skipped so far,
    /// in this process: each read that meets one counts it. The default, for
    /// a store that cannot hold one, is 0.
    fn failures_skipped(&self) -> u64 {
        0
    }
}
