//! `Drive`: a Rust future awaited from asyncio, polled on the event loop's
//! own thread. A route calls Python coroutines on that loop; polling it there
//! (instead of on a tokio worker) saves two thread hand-offs per call. Wakes
//! from tokio (Redis I/O, timers) reach the loop with `call_soon_threadsafe`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;

use crate::runtime;

/// The future a `Drive` runs.
pub(crate) type PyFuture = Pin<Box<dyn Future<Output = PyResult<Py<PyAny>>> + Send>>;

/// An awaitable over a Rust future: `await drive` polls the future on the
/// loop's thread; while it is pending, the awaiting task waits on an
/// asyncio future that the Rust waker completes.
#[pyclass(module = "fleet_breaker._native")]
pub(crate) struct Drive {
    future: Mutex<Option<PyFuture>>,
    event_loop: Py<PyAny>,
    /// `wake(fut)`: completes `fut` unless it is done (a Python helper).
    wake: Py<PyAny>,
}

impl std::fmt::Debug for Drive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drive").finish_non_exhaustive()
    }
}

impl Drive {
    pub(crate) fn new(future: PyFuture, event_loop: Py<PyAny>, wake: Py<PyAny>) -> Self {
        Self {
            future: Mutex::new(Some(future)),
            event_loop,
            wake,
        }
    }
}

/// Completes one asyncio future on its loop, from any thread.
struct LoopWaker {
    event_loop: Py<PyAny>,
    wake: Py<PyAny>,
    future: Py<PyAny>,
}

impl Wake for LoopWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        Python::attach(|py| {
            // A closed loop: the awaiting task is gone, nothing to wake.
            let _ = self.event_loop.bind(py).call_method1(
                pyo3::intern!(py, "call_soon_threadsafe"),
                (self.wake.bind(py), self.future.bind(py)),
            );
        });
    }
}

#[pymethods]
impl Drive {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut slot = self.future.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(future) = slot.as_mut() else {
            return Err(PyRuntimeError::new_err("this route was already awaited"));
        };
        let pending = self
            .event_loop
            .bind(py)
            .call_method0(pyo3::intern!(py, "create_future"))?;
        let waker = Waker::from(Arc::new(LoopWaker {
            event_loop: self.event_loop.clone_ref(py),
            wake: self.wake.clone_ref(py),
            future: pending.clone().unbind(),
        }));
        let polled = {
            let _guard = runtime().enter();
            future.as_mut().poll(&mut Context::from_waker(&waker))
        };
        match polled {
            Poll::Ready(result) => {
                *slot = None;
                Err(PyStopIteration::new_err((result?,)))
            }
            Poll::Pending => {
                pending.setattr(pyo3::intern!(py, "_asyncio_future_blocking"), true)?;
                Ok(pending.unbind())
            }
        }
    }
}

impl Drop for Drive {
    fn drop(&mut self) {
        // Abandoned (the task was cancelled): permits held by the future
        // are handed back on the runtime.
        if let Some(future) = self
            .future
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _guard = runtime().enter();
            drop(future);
        }
    }
}
