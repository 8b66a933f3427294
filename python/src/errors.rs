//! The crate's errors as the Python exceptions of `fleet_breaker._errors`.

use fleet_breaker::breaker::RejectCause;
use fleet_breaker::{BreakerError, Rejected, StoreError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// The module defining the package's exception classes.
static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// The class `name` of `fleet_breaker._errors`.
pub(crate) fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let module =
        ERRORS.get_or_try_init(py, || py.import("fleet_breaker._errors").map(Bound::unbind))?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

/// An instance of the exception class `name` built from `args`, as a `PyErr`.
fn raise<'py>(py: Python<'py>, name: &str, args: impl pyo3::call::PyCallArgs<'py>) -> PyErr {
    match class(py, name).and_then(|cls| cls.call1(args)) {
        Ok(value) => PyErr::from_value(value),
        Err(error) => error,
    }
}

/// `CircuitOpenError` for a refused call.
pub(crate) fn rejected(py: Python<'_>, rejected: &Rejected) -> PyErr {
    let cause = match rejected.cause {
        RejectCause::StoreUnavailable => "store_unavailable",
        RejectCause::LocalQuorum => "local_quorum",
        // `Circuit`, and any cause a later crate adds.
        _ => "circuit",
    };
    raise(
        py,
        "CircuitOpenError",
        (
            rejected.to_string(),
            rejected.agent.as_str(),
            rejected.state.to_string(),
            rejected.retry_after.map(|d| d.as_secs_f64()),
            cause,
        ),
    )
}

/// A store error: `StoreUnavailableError` when the store could not be
/// reached or did not answer in time, `ValueError` for bad input,
/// `FleetBreakerError` otherwise.
pub(crate) fn store(py: Python<'_>, error: &StoreError) -> PyErr {
    if error.is_invalid_input() {
        PyValueError::new_err(error.to_string())
    } else if error.is_store_unavailable() {
        raise(py, "StoreUnavailableError", (error.to_string(),))
    } else {
        raise(py, "FleetBreakerError", (error.to_string(),))
    }
}

/// A breaker error, as [`store`] says; invalid ids and input are `ValueError`.
pub(crate) fn breaker(py: Python<'_>, error: &BreakerError) -> PyErr {
    match error {
        BreakerError::Store(e) => store(py, e),
        e if e.is_invalid_input() => PyValueError::new_err(e.to_string()),
        e => raise(py, "FleetBreakerError", (e.to_string(),)),
    }
}

/// `ValueError` with `error`'s message: a setting or an id broke a rule.
pub(crate) fn value_error(error: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(error.to_string())
}
