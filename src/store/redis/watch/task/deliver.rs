//! What the task does with each transition it reads: judge it, check it
//! against the store where needed (`verify.rs`), feed the cache and the
//! subscribers.

use std::sync::atomic::Ordering;

use super::super::verify::{self, Delivered, Verdict};
use super::Task;
use crate::model::Transition;

impl Task {
    /// A transition from pub/sub or the stream, once believed
    /// (`verify.rs`): to the cache (which moves forward only), and to
    /// subscribers if it is news for its agent.
    pub(super) async fn take_transition(&mut self, transition: Transition) {
        let last = self.delivered.get(&transition.agent_id).copied();
        let epoch = match verify::judge(last, &transition) {
            Verdict::Old => {
                self.sink.transition(&transition);
                return;
            }
            Verdict::Next => transition.epoch,
            Verdict::Check => match self.check(&transition).await {
                Some(epoch) => epoch,
                None => return,
            },
        };
        self.sink.transition(&transition);
        if last.is_some_and(|last| last.epoch == epoch && last.generation >= transition.generation)
        {
            return;
        }
        tracing::debug!(
            agent = %transition.agent_id,
            from = %transition.from,
            to = %transition.to,
            generation = transition.generation,
            epoch,
            reason = %transition.reason,
            "watcher: transition"
        );
        self.delivered.insert(
            transition.agent_id.clone(),
            Delivered {
                epoch,
                generation: transition.generation,
            },
        );
        // No receiver is not an error: nobody listens.
        let _ = self.sender.send(transition);
    }

    /// Reads the agent's hash to confirm `transition`: its epoch when
    /// confirmed, `None` (counted, logged) when not, or when the store does
    /// not answer within the command timeout.
    async fn check(&mut self, transition: &Transition) -> Option<u64> {
        let key = self.target.keys.state(&transition.agent_id);
        let read = match self.plain.clone() {
            Some(mut conn) => {
                tokio::time::timeout(self.command_timeout(), verify::stored(&mut conn, &key))
                    .await
                    .map_err(|_| "no answer".to_owned())
                    .and_then(|read| read.map_err(|e| e.to_string()))
            }
            None => Err("no connection".to_owned()),
        };
        let refused = match read {
            Ok(stored) => match verify::confirmed(stored, transition) {
                Some(epoch) => return Some(epoch),
                None if stored.is_none() => "the store does not know the agent",
                None => "another epoch, or a generation the agent has not reached",
            },
            Err(error) => {
                tracing::debug!(agent = %transition.agent_id, %error, "watcher: cannot check a transition against the store");
                "the store could not be read"
            }
        };
        self.shared.unverified.fetch_add(1, Ordering::Relaxed);
        self.refusals.log(transition, refused);
        None
    }
}
