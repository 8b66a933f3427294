//! [`WebhookHandle`]: the running delivery tasks.

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::stats::{EndpointStats, Stats};

/// The delivery tasks started by [`Webhooks::spawn_redis`] or
/// [`Webhooks::spawn_in_process`](super::Webhooks::spawn_in_process).
///
/// ## Behavior
///
/// - [`shutdown`](Self::shutdown) lets each task finish the attempt it is
///   making (bounded by the attempt timeout) and, on Redis, the read it is
///   waiting on (bounded by the poll interval), then stops it. On Redis the
///   deliveries it holds but has not tried are handed back at once for the
///   other instances to take, and a consumer left holding none leaves its
///   groups (`XGROUP DELCONSUMER`). In process, queued transitions are
///   dropped.
/// - Dropping the handle aborts the tasks where they are, like a crash: on
///   Redis, another instance takes over their unacknowledged deliveries
///   after the reclaim idle time.
///
/// [`Webhooks::spawn_redis`]: super::Webhooks::spawn_redis
pub struct WebhookHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    stats: Arc<Stats>,
}

impl fmt::Debug for WebhookHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookHandle")
            .field("tasks", &self.tasks.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl WebhookHandle {
    pub(super) fn new(
        stop: watch::Sender<bool>,
        tasks: Vec<JoinHandle<()>>,
        stats: Arc<Stats>,
    ) -> Self {
        Self { stop, tasks, stats }
    }

    /// What this handle's tasks did so far, one entry per URL in the order
    /// given to [`Webhooks::builder`](super::Webhooks::builder).
    #[must_use]
    pub fn stats(&self) -> Vec<EndpointStats> {
        self.stats.snapshot()
    }

    /// Stops the tasks after their current attempt, and waits for them.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            if let Err(e) = task.await
                && e.is_panic()
            {
                tracing::error!(error = %e, "a webhook delivery task panicked");
            }
        }
    }
}

impl Drop for WebhookHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Resolves once `stop` says stop (or its handle is gone).
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
