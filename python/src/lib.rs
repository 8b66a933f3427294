//! `fleet_breaker._native`: the Rust crate `fleet-breaker` seen from Python.
//!
//! Thin bindings only: every rule (states, counters, probes, routing order,
//! the journal) is the crate's. The Python package `fleet_breaker` wraps
//! these classes in the original specification's API.
//!
//! - `breaker.rs`: `NativeBreaker` (a `CircuitBreaker`).
//! - `permit.rs`: `NativePermit`, the transitions iterator.
//! - `router.rs`: `NativeRouter` (a `FailoverRouter` calling Python).
//! - `errors.rs`: the crate's errors as the package's Python exceptions.
//! - `drive.rs`: `Drive`, a route polled on the asyncio loop's thread.
//! - `guard.rs`: `NativeGuard`, `async with breaker.guard(...)`.
//! - `poll.rs`: decide at once when the answer needs no round trip.

use pyo3::prelude::*;

mod breaker;
mod drive;
mod errors;
mod guard;
mod permit;
mod poll;
mod router;

/// The tokio runtime every Rust task runs on: its own worker threads, never
/// the caller's; asyncio awaits it through pyo3-async-runtimes.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Runs `fut` to completion on the runtime with the GIL released: the plain
/// (not awaited) calls of the original API.
pub(crate) fn block_on<F>(py: Python<'_>, fut: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    py.detach(|| runtime().block_on(fut))
}

/// Called at interpreter exit (an `atexit` hook of the package): lets the
/// runtime's threads finish what they do under the GIL (handing a result
/// to asyncio) before finalization starts, when taking the GIL would kill
/// them. Waits with the GIL released, at most 100 ms.
#[pyfunction]
fn _quiesce(py: Python<'_>) {
    py.detach(|| {
        let metrics = runtime().metrics();
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(100);
        // A short pause even when idle: a worker may be between its last
        // poll and the end of its GIL section.
        std::thread::sleep(std::time::Duration::from_millis(5));
        while metrics.num_alive_tasks() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<breaker::NativeBreaker>()?;
    m.add_class::<breaker::Policies>()?;
    m.add_class::<permit::NativePermit>()?;
    m.add_class::<permit::NativeTransitions>()?;
    m.add_class::<router::NativeRouter>()?;
    m.add_class::<guard::NativeGuard>()?;
    m.add_class::<guard::Ready>()?;
    m.add_function(wrap_pyfunction!(breaker::check_config, m)?)?;
    m.add_function(wrap_pyfunction!(breaker::check_agent_id, m)?)?;
    m.add_function(wrap_pyfunction!(_quiesce, m)?)?;
    Ok(())
}
