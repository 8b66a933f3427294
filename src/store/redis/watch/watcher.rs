//! [`spawn`]: the watcher task behind a [`RedisStore`](crate::RedisStore)'s feed.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::WatchTarget;
use super::task::Task;
use crate::agent_id::AgentId;
use crate::model::Transition;
use crate::store::feed::{FeedStats, SUBSCRIBER_CAPACITY};
use crate::store::{FeedHandle, FeedOptions, FeedSink, FeedTarget, Resync};

/// Spawns the watcher task on the current tokio runtime: it keeps a pub/sub
/// subscription to the store's transitions, feeds `feed`'s sink (when
/// given) and broadcasts each transition to the handle's subscribers.
///
/// The lifecycle of its connection is described in the
/// [module docs](super#behavior). The handle returns at once; the task
/// connects in the background, so [`FeedHandle::is_connected`] is `false` at
/// first. Outside a tokio runtime nothing is spawned: the feed never
/// connects (the sink is never trusted) and an error is logged.
pub(crate) fn spawn(target: WatchTarget, feed: Option<FeedTarget>) -> FeedHandle {
    let stats = Arc::new(FeedStats::default());
    let (sender, _) = broadcast::channel::<Transition>(SUBSCRIBER_CAPACITY);
    let sink = feed.as_ref().map(|feed| Arc::clone(&feed.sink));
    let FeedTarget {
        sink: task_sink,
        resync,
        options,
    } = feed.unwrap_or_else(|| FeedTarget {
        sink: Arc::new(NoSink),
        resync: no_resync(),
        options: FeedOptions::default(),
    });
    let task = match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let task = Task::new(
                target,
                task_sink,
                resync,
                options.sanitized(),
                Arc::clone(&stats),
                sender.clone(),
            );
            Some(runtime.spawn(task.run()))
        }
        Err(_) => {
            tracing::error!(
                "a Redis feed was started outside a tokio runtime: no subscription, the local cache stays untrusted"
            );
            None
        }
    };
    FeedHandle::new(stats, sender, task, sink)
}

/// The sink of a feed started only for its subscribers: holds nothing.
#[derive(Debug)]
struct NoSink;

impl FeedSink for NoSink {
    fn transition(&self, _: &Transition) {}
    fn failure_count(&self, _: &AgentId, _: u64, _: u64) {}
    fn trusted(&self) {}
    fn untrusted(&self) {}
    fn forget_all(&self) {}
    fn agents(&self) -> Vec<AgentId> {
        Vec::new()
    }
}

fn no_resync() -> Resync {
    Arc::new(|_| Box::pin(async {}))
}
