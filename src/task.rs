//! A background task started on first use and aborted with its owner.

use std::sync::{Mutex, PoisonError};

use tokio::task::JoinHandle;

/// A background task started when first needed (and again if it ended),
/// and aborted when its owner is dropped.
#[derive(Debug, Default)]
pub(crate) struct LazyTask(Mutex<Option<JoinHandle<()>>>);

impl LazyTask {
    /// Starts the task with `spawn` unless one runs; `spawn` may decline
    /// (`None`: outside a runtime, say). Returns whether one was running.
    pub(crate) fn ensure(&self, spawn: impl FnOnce() -> Option<JoinHandle<()>>) -> bool {
        let mut task = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if task.as_ref().is_none_or(JoinHandle::is_finished) {
            *task = spawn();
            false
        } else {
            true
        }
    }
}

impl Drop for LazyTask {
    fn drop(&mut self) {
        if let Some(task) = self
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}
