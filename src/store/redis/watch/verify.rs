//! Which transitions the watcher believes: ordering by (epoch, generation),
//! and the check against the store of anything that is not plainly the next
//! transition of an agent already followed.
//!
//! Anyone who can write to the Redis can `PUBLISH` on `PREFIX:events` (or
//! append to the stream), and an agent deleted (`DEL`, `FLUSHALL`) starts
//! again at generation 1 under a new epoch. So:
//!
//! - the next generation of the epoch last delivered for an agent is
//!   believed as it comes (the common case: no round trip);
//! - a generation already delivered in that epoch is old news;
//! - anything else (the first message of an agent, another epoch, a jump
//!   past the next generation) is read against the agent's hash (`HMGET
//!   PREFIX:{AGENT}:state epoch generation`): believed only if the hash
//!   exists, holds the message's epoch (a message without one, from a
//!   publisher older than epochs, is checked by generation alone) and has
//!   reached its generation. A forged message (an unknown agent, a wrong
//!   epoch, an impossible generation) is refused, counted
//!   ([`FeedHandle::unverified`](crate::store::FeedHandle::unverified)) and never
//!   delivered or cached, so it cannot silence the agent's later
//!   transitions or make a metric series for an agent the store does not
//!   know.

use std::time::{Duration, Instant};

use redis::Value;
use redis::aio::ConnectionLike;

use crate::model::Transition;

use super::entries::bytes;

/// The last transition delivered for an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Delivered {
    pub(super) epoch: u64,
    pub(super) generation: u64,
}

/// What to make of a transition before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Already delivered (same epoch, a generation not newer).
    Old,
    /// The next generation of the same epoch: believed.
    Next,
    /// To be read against the store first.
    Check,
}

/// Judges `t` against the last transition delivered for its agent.
pub(super) fn judge(last: Option<Delivered>, t: &Transition) -> Verdict {
    match last {
        Some(last) if last.epoch == t.epoch => {
            if t.generation <= last.generation {
                Verdict::Old
            } else if t.generation - last.generation == 1 {
                Verdict::Next
            } else {
                Verdict::Check
            }
        }
        _ => Verdict::Check,
    }
}

/// An agent's epoch and generation as its hash holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stored {
    pub(super) epoch: u64,
    pub(super) generation: u64,
}

/// The epoch `t` belongs to when the store confirms it: the hash exists,
/// has the message's epoch (or the message has none), and has reached its
/// generation. `None`: not believed.
pub(super) fn confirmed(stored: Option<Stored>, t: &Transition) -> Option<u64> {
    let stored = stored?;
    let epoch_matches = t.epoch == 0 || t.epoch == stored.epoch;
    (epoch_matches && t.generation <= stored.generation).then_some(stored.epoch)
}

/// Reads `epoch` and `generation` of the hash `key`; `None` when it has no
/// readable generation (no hash: an agent the store does not know).
pub(super) async fn stored<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
) -> redis::RedisResult<Option<Stored>> {
    let reply: Value = redis::cmd("HMGET")
        .arg(key)
        .arg("epoch")
        .arg("generation")
        .query_async(conn)
        .await?;
    let Value::Array(fields) = reply else {
        return Ok(None);
    };
    let number = |value: Option<&Value>| {
        value
            .and_then(bytes)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|text| text.parse::<u64>().ok())
    };
    let Some(generation) = number(fields.get(1)) else {
        return Ok(None);
    };
    Ok(Some(Stored {
        epoch: number(fields.first()).unwrap_or(0),
        generation,
    }))
}

/// At most one WARN per this interval about refused transitions.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Rate-limits the WARN lines about refused transitions.
#[derive(Debug, Default)]
pub(super) struct Refusals {
    last: Option<Instant>,
    suppressed: u64,
}

impl Refusals {
    /// Logs the refusal of `t` (why: `reason`), at most once a second.
    pub(super) fn log(&mut self, t: &Transition, reason: &str) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < REFUSAL_LOG_INTERVAL)
        {
            self.suppressed = self.suppressed.saturating_add(1);
            return;
        }
        tracing::warn!(
            agent = %t.agent_id,
            generation = t.generation,
            epoch = t.epoch,
            reason,
            similar_not_logged = self.suppressed,
            "watcher: a transition the store does not confirm was ignored"
        );
        self.last = Some(now);
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent_id::AgentId;
    use crate::model::{CircuitState, TransitionReason};

    fn t(epoch: u64, generation: u64) -> Transition {
        Transition {
            agent_id: AgentId::new("a").unwrap(),
            from: CircuitState::Closed,
            to: CircuitState::Open,
            generation,
            at_ms: 1,
            reason: TransitionReason::FailureThreshold,
            backoff_seconds: 1.5,
            open_until_ms: 2,
            epoch,
        }
    }

    #[test]
    fn only_the_next_generation_of_the_same_epoch_goes_unchecked() {
        let last = Some(Delivered {
            epoch: 7,
            generation: 13,
        });
        assert_eq!(judge(last, &t(7, 14)), Verdict::Next);
        assert_eq!(judge(last, &t(7, 13)), Verdict::Old);
        assert_eq!(judge(last, &t(7, 1)), Verdict::Old);
        assert_eq!(judge(last, &t(7, 15)), Verdict::Check);
        assert_eq!(judge(last, &t(7, u64::MAX)), Verdict::Check);
        assert_eq!(judge(last, &t(8, 1)), Verdict::Check);
        assert_eq!(judge(last, &t(0, 14)), Verdict::Check);
        assert_eq!(judge(None, &t(7, 1)), Verdict::Check);
    }

    #[test]
    fn the_store_confirms_its_epoch_up_to_its_generation() {
        let stored = Some(Stored {
            epoch: 8,
            generation: 3,
        });
        assert_eq!(confirmed(stored, &t(8, 1)), Some(8));
        assert_eq!(confirmed(stored, &t(8, 3)), Some(8));
        assert_eq!(
            confirmed(stored, &t(0, 2)),
            Some(8),
            "no epoch: by generation"
        );
        assert_eq!(confirmed(stored, &t(8, 9_007_199_254_740_991)), None);
        assert_eq!(confirmed(stored, &t(7, 1)), None, "another epoch");
        assert_eq!(confirmed(None, &t(8, 1)), None, "an unknown agent");
    }
}
