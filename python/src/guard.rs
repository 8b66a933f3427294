//! `NativeGuard`: `async with breaker.guard(agent_id)`, in Rust so that a
//! closed circuit's call costs no Python coroutine: `__aenter__` and
//! `__aexit__` return an already-finished awaitable (`Ready`) when the
//! breaker decides at once, an asyncio future otherwise.

use std::sync::{Arc, Mutex, PoisonError};

use fleet_breaker::{AgentId, CircuitBreaker};
use pyo3::exceptions::asyncio::CancelledError;
use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::PyType;
use pyo3_async_runtimes::tokio::future_into_py;

use crate::errors;
use crate::permit::NativePermit;
use crate::poll::acquire_now;

/// An awaitable that is already done: `await ready` is its value.
#[pyclass(module = "fleet_breaker._native")]
#[derive(Debug)]
pub(crate) struct Ready {
    value: Option<Py<PyAny>>,
}

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let value = self.value.take().unwrap_or_else(|| py.None());
        Err(PyStopIteration::new_err((value,)))
    }
}

fn ready(py: Python<'_>, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, Ready { value: Some(value) })?.into_any())
}

/// The permit a guard holds between `__aenter__` and `__aexit__`.
type Slot = Arc<Mutex<Option<Py<NativePermit>>>>;

/// `async with breaker.guard(agent_id) as permit:` — a refusal raises
/// `CircuitOpenError` (the block does not run); an exception in the block
/// is a failure and propagates; `asyncio.CancelledError` is neutral.
#[pyclass(module = "fleet_breaker._native")]
#[derive(Debug)]
pub(crate) struct NativeGuard {
    breaker: CircuitBreaker,
    agent: AgentId,
    permit: Slot,
}

impl NativeGuard {
    pub(crate) fn new(breaker: CircuitBreaker, agent: AgentId) -> Self {
        Self {
            breaker,
            agent,
            permit: Arc::default(),
        }
    }
}

#[pymethods]
impl NativeGuard {
    fn __aenter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match acquire_now(&self.breaker, &self.agent) {
            Ok(Ok(permit)) => {
                let permit = Py::new(py, NativePermit::new(permit))?;
                *self.permit.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(permit.clone_ref(py));
                ready(py, permit.into_any())
            }
            Ok(Err(rejected)) => Err(errors::rejected(py, &rejected)),
            Err(pending) => {
                let slot = Arc::clone(&self.permit);
                let awaitable = future_into_py(py, async move {
                    let permit = pending.await;
                    Python::attach(|py| match permit {
                        Ok(permit) => {
                            let permit = Py::new(py, NativePermit::new(permit))?;
                            *slot.lock().unwrap_or_else(PoisonError::into_inner) =
                                Some(permit.clone_ref(py));
                            Ok(permit)
                        }
                        Err(rejected) => Err(errors::rejected(py, &rejected)),
                    })
                })?;
                Ok(awaitable.unbind())
            }
        }
    }

    fn __aexit__(
        &self,
        py: Python<'_>,
        exc_type: Option<Bound<'_, PyType>>,
        exc: Option<Bound<'_, PyAny>>,
        _traceback: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let permit = self
            .permit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("guard exited without a permit"))?;
        let permit = permit.bind(py).get();
        let pending = match exc_type {
            None => permit.settle_now(py, "success", None)?,
            Some(kind) if kind.is_subclass_of::<CancelledError>()? => {
                permit.settle_now(py, "neutral", None)?
            }
            Some(_) => {
                let reason = exc.map(|e| e.repr().map(|r| r.to_string())).transpose()?;
                permit.settle_now(py, "failure", reason)?
            }
        };
        match pending {
            None => ready(py, false.into_pyobject(py)?.to_owned().into_any().unbind()),
            // The outcome's store call, answering None: the exception, if
            // any, propagates.
            Some(settling) => Ok(settling.unbind()),
        }
    }
}
