//! [`StorePolicy`]: what a breaker does when its store fails.

use serde::{Deserialize, Serialize};

/// What a breaker does when its store (Redis) cannot be reached or fails.
///
/// ## Behavior
///
/// - `FailLocal` (the default): the pod decides alone, with a local breaker of
///   the same semantics, seeded from the last snapshot it saw of the agent
///   (or a fresh closed circuit). Outcomes are recorded locally.
/// - `FailOpen`: every call is admitted; outcomes are not recorded.
/// - `FailClosed`: every call is rejected with
///   [`RejectCause::StoreUnavailable`](crate::RejectCause::StoreUnavailable).
/// - A store error on a read or admin operation (`metrics`, `reset`, ...)
///   is returned to the caller whatever the policy.
/// - The policy decides one call whose store call failed, and every call
///   while the pod is in degraded mode (after repeated store-unavailable
///   errors; see [`CircuitBreaker`](crate::CircuitBreaker)), then without
///   trying the store at all. Under `FailLocal`, an outcome that cannot
///   reach the store moves the local breaker; local decisions are never
///   replayed to the store, which is the truth again once it answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StorePolicy {
    /// Fall back to a local breaker per agent, seeded from its last snapshot.
    #[default]
    FailLocal,
    /// Admit every call.
    FailOpen,
    /// Reject every call.
    FailClosed,
}
