//! `NativeRouter`: a [`FailoverRouter`] whose task function is a Python
//! callable (a coroutine function, or a plain one).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use fleet_breaker::router::{AgentReport, Attempt, Classify};
use fleet_breaker::{AgentId, AllAgentsFailed, BreakerError, FailoverRouter, Outcome, RouteError};
use pyo3::exceptions::PyRuntimeError;
use pyo3::exceptions::asyncio::CancelledError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_async_runtimes::TaskLocals;
use pyo3_async_runtimes::tokio::{future_into_py, get_current_locals};

use crate::breaker::{NativeBreaker, seconds};
use crate::drive::{Drive, PyFuture};
use crate::{block_on, errors};

type Call = Pin<Box<dyn Future<Output = PyResult<Py<PyAny>>> + Send>>;

/// A Python exception counts against the agent, except
/// `asyncio.CancelledError`: a cancelled call says nothing about it.
#[derive(Debug, Clone, Copy)]
struct PyClassifier;

impl Classify<Py<PyAny>, PyErr> for PyClassifier {
    fn classify(&self, result: Result<&Py<PyAny>, &PyErr>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) if Python::attach(|py| e.is_instance_of::<CancelledError>(py)) => {
                Outcome::Neutral
            }
            Err(_) => Outcome::Failure,
        }
    }
}

/// The exceptions each agent's calls raised, kept for `AllAgentsFailed`.
type Raised = Arc<Mutex<Vec<(String, PyErr)>>>;

/// A [`FailoverRouter`] over a `NativeBreaker`.
#[pyclass(frozen, module = "fleet_breaker._native")]
#[derive(Debug)]
pub(crate) struct NativeRouter {
    router: FailoverRouter<PyClassifier>,
}

#[pymethods]
impl NativeRouter {
    #[new]
    #[pyo3(signature = (breaker, max_retries=3, attempt_timeout=None, slow_call_threshold=None, panic_mode=false, failures_cap=None))]
    fn new(
        breaker: &NativeBreaker,
        max_retries: i64,
        attempt_timeout: Option<f64>,
        slow_call_threshold: Option<f64>,
        panic_mode: bool,
        failures_cap: Option<usize>,
    ) -> PyResult<Self> {
        let retries = u32::try_from(max_retries).map_err(|_| {
            errors::value_error(format!(
                "invalid router config: `max_retries` is {max_retries}, but it must be at least 1"
            ))
        })?;
        let _guard = crate::runtime().enter();
        let mut builder = FailoverRouter::builder(breaker.breaker.clone())
            .max_retries(retries)
            .panic_mode(panic_mode);
        if let Some(t) = attempt_timeout {
            builder = builder.attempt_timeout(seconds("attempt_timeout", t)?);
        }
        if let Some(t) = slow_call_threshold {
            builder = builder.slow_call_threshold(seconds("slow_call_threshold", t)?);
        }
        if let Some(cap) = failures_cap {
            builder = builder.failures_cap(cap);
        }
        let router = builder
            .classifier(PyClassifier)
            .build()
            .map_err(errors::value_error)?;
        Ok(Self { router })
    }

    /// An awaitable routing one task: `func(agent_id, **kwargs)` on the
    /// agents in priority order, by the crate's `route_task`.
    #[pyo3(signature = (task_id, agents, func, kwargs, wake))]
    fn route(
        &self,
        py: Python<'_>,
        task_id: String,
        agents: Vec<String>,
        func: Py<PyAny>,
        kwargs: Option<Py<PyDict>>,
        wake: Py<PyAny>,
    ) -> PyResult<Drive> {
        let locals = get_current_locals(py)?;
        let event_loop = locals.event_loop(py).unbind();
        let router = self.router.clone();
        let future: PyFuture = Box::pin(async move {
            let raised: Raised = Arc::default();
            let task_fn =
                |agent: AgentId, ()| call(&func, kwargs.as_ref(), &locals, agent, &raised);
            let result = router.route_task(&task_id, &agents, task_fn, ()).await;
            match result {
                Ok(routed) => Ok(routed.value),
                Err(RouteError::AllAgentsFailed(failed)) => {
                    Err(Python::attach(|py| all_failed(py, &failed, &raised)))
                }
                Err(RouteError::Inner { error, .. }) => Err(error),
                Err(other) => Err(errors::value_error(other)),
            }
        });
        Ok(Drive::new(future, event_loop, wake))
    }

    /// The health report as JSON (blocks with the GIL released).
    fn health_status_json(&self, py: Python<'_>) -> PyResult<String> {
        let health = block_on(py, self.router.health_status());
        json(py, health)
    }

    /// An awaitable of the health report as JSON.
    fn health_status_json_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let router = self.router.clone();
        future_into_py(py, async move {
            let health = router.health_status().await;
            Python::attach(|py| json(py, health))
        })
    }

    /// Up to `limit` routing failures of the fleet, newest first, as JSON.
    fn recent_failures_json(&self, py: Python<'_>, limit: usize) -> PyResult<String> {
        let failures = block_on(py, self.router.recent_failures(limit));
        let failures = failures.map_err(|e| errors::breaker(py, &e))?;
        let rows: Vec<serde_json::Value> = failures
            .iter()
            .map(|f| {
                serde_json::json!({
                    "task_id": f.task_id,
                    "agent_id": f.agent_id.as_str(),
                    "reason": f.reason,
                    "timestamp": fleet_breaker::breaker::iso8601(f.time_ms),
                    "time_ms": f.time_ms,
                    "instance_id": f.instance_id,
                })
            })
            .collect();
        Ok(serde_json::Value::Array(rows).to_string())
    }

    /// Adds this pod's pending routing decisions to the fleet-wide count.
    fn flush_routing_events(&self, py: Python<'_>) -> PyResult<u64> {
        block_on(py, self.router.flush_routing_events()).map_err(|e| errors::breaker(py, &e))
    }
}

fn json<T: serde::Serialize>(py: Python<'_>, value: Result<T, BreakerError>) -> PyResult<String> {
    let value = value.map_err(|e| errors::breaker(py, &e))?;
    serde_json::to_string(&value).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// Starts one call of the task function; an exception it raises (at once
/// or when awaited) is kept for the agent's report.
fn call(
    func: &Py<PyAny>,
    kwargs: Option<&Py<PyDict>>,
    locals: &TaskLocals,
    agent: AgentId,
    raised: &Raised,
) -> Call {
    let started: PyResult<Call> = Python::attach(|py| {
        let out = func
            .bind(py)
            .call((agent.as_str(),), kwargs.map(|k| k.bind(py)))?;
        if out.hasattr(pyo3::intern!(py, "__await__"))? {
            let call: Call = Box::pin(pyo3_async_runtimes::into_future_with_locals(locals, out)?);
            Ok(call)
        } else {
            let value = out.unbind();
            let call: Call = Box::pin(async move { Ok(value) });
            Ok(call)
        }
    });
    let raised = Arc::clone(raised);
    Box::pin(async move {
        let result = match started {
            Ok(call) => call.await,
            Err(error) => Err(error),
        };
        if let Err(error) = &result {
            let kept = Python::attach(|py| error.clone_ref(py));
            raised
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((agent.as_str().to_owned(), kept));
        }
        result
    })
}

/// `AllAgentsFailed` with one `AgentAttempt` per agent; the exception
/// each failed call raised is on its attempt, and the last one is the
/// `__cause__`, traceback and all.
fn all_failed(py: Python<'_>, failed: &AllAgentsFailed, raised: &Raised) -> PyErr {
    let raised: Vec<(String, PyErr)> =
        std::mem::take(&mut *raised.lock().unwrap_or_else(PoisonError::into_inner));
    let build = || -> PyResult<PyErr> {
        let attempt_class = errors::class(py, "AgentAttempt")?;
        let mut attempts = Vec::with_capacity(failed.agents.len());
        for AgentReport { agent, attempt } in &failed.agents {
            let exception = raised
                .iter()
                .rev()
                .find(|(a, _)| a == agent.as_str())
                .map(|(_, e)| e.value(py).clone());
            let (outcome, state, retry_after) = match attempt {
                Attempt::Rejected {
                    state, retry_after, ..
                } => (
                    "rejected",
                    Some(state.to_string()),
                    retry_after.map(|d| d.as_secs_f64()),
                ),
                Attempt::Failed { .. } => ("failed", None, None),
                Attempt::TimedOut { .. } => ("timed_out", None, None),
                _ => ("not_tried", None, None),
            };
            attempts.push(attempt_class.call1((
                agent.as_str(),
                outcome,
                attempt.to_string(),
                state,
                retry_after,
                exception,
            ))?);
        }
        let error = errors::class(py, "AllAgentsFailed")?.call1((
            failed.to_string(),
            failed.task_id.as_str(),
            attempts,
            failed.calls,
        ))?;
        let error = PyErr::from_value(error);
        if let Some((_, last)) = raised.last() {
            error.set_cause(py, Some(last.clone_ref(py)));
        }
        Ok(error)
    };
    build().unwrap_or_else(|e| e)
}
