//! [`Watcher`]: the handle of the watcher task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::task::Task;
use super::{Resync, SUBSCRIBER_CAPACITY, WatchOptions};
use crate::cache::Cache;
use crate::model::Transition;
use crate::store::WatchTarget;

/// What the task and the handle share: the watcher's state, for metrics and
/// health.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Subscribed, replayed and resynced; cleared the moment the connection
    /// is found dead.
    pub(super) connected: AtomicBool,
    /// Completed reconnections after the first connection.
    pub(super) reconnects: AtomicU64,
    /// Messages and stream entries skipped as malformed.
    pub(super) malformed: AtomicU64,
    /// Transitions refused because the store did not confirm them.
    pub(super) unverified: AtomicU64,
}

/// A running watcher: one task that keeps a pub/sub subscription to a Redis
/// store's transitions, feeds the [`Cache`] and broadcasts each transition.
///
/// The lifecycle of its connection is described in the
/// [module docs](crate::watch#behavior).
///
/// ## Behavior
///
/// - [`Watcher::spawn`] returns at once; the task connects in the
///   background, so [`Watcher::is_connected`] is `false` at first.
/// - Dropping the handle stops the task, closes its connections and marks
///   the cache's subscription lost.
/// - [`Watcher::subscribe`] receivers get each transition at most once per
///   (agent, epoch, generation), in increasing generation order per agent
///   and epoch, whether it came over pub/sub or from the replay of the
///   stream; only transitions the store confirms when they are not plainly
///   the next one (see [`Watcher::unverified`]). After an agent's hash is
///   deleted or Redis flushed, its new history (a new epoch, generations
///   from 1) is delivered as it happens. The channel holds
///   [`SUBSCRIBER_CAPACITY`] (1024) transitions; a receiver that falls
///   further behind gets [`broadcast::error::RecvError::Lagged`] and loses
///   the oldest ones. Transitions published while no receiver exists are
///   not kept for later ones.
#[derive(Debug)]
pub struct Watcher {
    shared: Arc<Shared>,
    sender: broadcast::Sender<Transition>,
    cache: Arc<Cache>,
    /// `None` when there was no tokio runtime to spawn on.
    task: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Spawns the watcher task on the current tokio runtime.
    ///
    /// Outside a tokio runtime nothing is spawned: the watcher never
    /// connects (the cache is never trusted) and an error is logged.
    #[must_use = "dropping the Watcher stops it"]
    pub fn spawn(
        target: WatchTarget,
        cache: Arc<Cache>,
        resync: Resync,
        options: WatchOptions,
    ) -> Watcher {
        let shared = Arc::new(Shared::default());
        let (sender, _) = broadcast::channel(SUBSCRIBER_CAPACITY);
        let task = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let task = Task::new(
                    target,
                    Arc::clone(&cache),
                    resync,
                    options.sanitized(),
                    Arc::clone(&shared),
                    sender.clone(),
                );
                Some(runtime.spawn(task.run()))
            }
            Err(_) => {
                tracing::error!(
                    "Watcher::spawn called outside a tokio runtime: no subscription, the local cache stays untrusted"
                );
                None
            }
        };
        Watcher {
            shared,
            sender,
            cache,
            task,
        }
    }

    /// A receiver of every transition the watcher sees from now on; see the
    /// type's behaviour list for ordering and lag.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.sender.subscribe()
    }

    /// Whether the subscription is up: connected, replayed and resynced, and
    /// not yet found dead.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// Completed reconnections after the first connection.
    #[must_use]
    pub fn reconnects(&self) -> u64 {
        self.shared.reconnects.load(Ordering::Relaxed)
    }

    /// Messages (and stream entries) skipped as malformed so far.
    #[must_use]
    pub fn malformed(&self) -> u64 {
        self.shared.malformed.load(Ordering::Relaxed)
    }

    /// Well-formed transitions ignored so far because the store did not
    /// confirm them: an agent it does not know, another epoch, a generation
    /// the agent has not reached (forged, or made stale by a flush), or the
    /// store unreadable at the time of the check. See the
    /// [module docs](crate::watch#behavior).
    #[must_use]
    pub fn unverified(&self) -> u64 {
        self.shared.unverified.load(Ordering::Relaxed)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.shared.connected.store(false, Ordering::Release);
        self.cache.lose_subscription();
    }
}
