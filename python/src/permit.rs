//! `NativePermit`: one granted call; `NativeTransitions`: the breaker's
//! transitions as an async iterator.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use fleet_breaker::{Outcome, Permit, Transition};
use futures::{Stream, StreamExt};
use pyo3::exceptions::{PyRuntimeError, PyStopAsyncIteration};
use pyo3::prelude::*;
use pyo3_async_runtimes::tokio::future_into_py;

use crate::breaker::json;
use crate::poll::now_or_later;
use crate::{errors, runtime};

/// One granted call, settled once with `success`, `failure` or `neutral`.
#[pyclass(frozen, module = "fleet_breaker._native")]
#[derive(Debug)]
pub(crate) struct NativePermit {
    permit: Mutex<Option<Permit>>,
    /// When the permit was granted: a success or failure reports the time
    /// since, for the slow-call policy (`slow_call_duration`).
    granted: Instant,
    agent_id: String,
    probe: bool,
    generation: u64,
}

impl NativePermit {
    pub(crate) fn new(permit: Permit) -> Self {
        Self {
            agent_id: permit.agent().as_str().to_owned(),
            probe: permit.is_probe(),
            generation: permit.generation(),
            granted: Instant::now(),
            permit: Mutex::new(Some(permit)),
        }
    }
}

#[pymethods]
impl NativePermit {
    /// Settles the permit: `None` when done at once, else an awaitable (a
    /// neutral outcome never waits: it is finished on the runtime).
    #[pyo3(signature = (outcome, reason=None))]
    pub(crate) fn settle_now<'py>(
        &self,
        py: Python<'py>,
        outcome: &str,
        reason: Option<String>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let outcome = match outcome {
            "success" => Outcome::Success,
            "failure" => Outcome::Failure,
            "neutral" => Outcome::Neutral,
            other => {
                return Err(errors::value_error(format!(
                    "outcome is {other:?}, but it must be \"success\", \"failure\" or \"neutral\""
                )));
            }
        };
        let permit = self
            .permit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this permit was already settled"))?;
        let elapsed = self.granted.elapsed();
        let settle = async move {
            match outcome {
                Outcome::Success => permit.success_after(elapsed).await,
                Outcome::Failure => {
                    permit
                        .failure_after(reason.unwrap_or_default(), elapsed)
                        .await;
                }
                Outcome::Neutral => permit.neutral().await,
            }
        };
        match now_or_later(settle) {
            Ok(()) => Ok(None),
            Err(pending) if outcome == Outcome::Neutral => {
                runtime().spawn(pending);
                Ok(None)
            }
            Err(pending) => future_into_py(py, async move {
                pending.await;
                Ok(())
            })
            .map(Some),
        }
    }

    /// The agent this permit allows calling.
    #[getter]
    fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// Whether this is a half-open probe.
    #[getter]
    fn is_probe(&self) -> bool {
        self.probe
    }

    /// The circuit generation the permit was granted in.
    #[getter]
    fn generation(&self) -> u64 {
        self.generation
    }
}

impl Drop for NativePermit {
    fn drop(&mut self) {
        // Dropped unsettled: neutral, handed back on the runtime.
        if let Some(permit) = self
            .permit
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _guard = runtime().enter();
            drop(permit);
        }
    }
}

type Transitions = Pin<Box<dyn Stream<Item = Transition> + Send>>;

/// The breaker's transitions, as an async iterator of JSON messages.
#[pyclass(frozen, module = "fleet_breaker._native")]
pub(crate) struct NativeTransitions {
    pub(crate) stream: Arc<tokio::sync::Mutex<Transitions>>,
}

impl std::fmt::Debug for NativeTransitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeTransitions").finish_non_exhaustive()
    }
}

#[pymethods]
impl NativeTransitions {
    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stream = Arc::clone(&self.stream);
        future_into_py(py, async move {
            let next = stream.lock().await.next().await;
            match next {
                Some(transition) => json(&transition),
                None => Err(PyStopAsyncIteration::new_err(())),
            }
        })
    }
}
