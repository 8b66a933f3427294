//! `NativeBreaker`: a [`CircuitBreaker`] on the embedded store or a Redis.

use std::sync::Arc;
use std::time::Duration;

use fleet_breaker::breaker::StorePolicy;
use fleet_breaker::clock::{Clock, SystemClock};
use fleet_breaker::config::AgentSettings;
use fleet_breaker::{
    AgentId, AgentMetrics, BreakerConfig, BreakerError, CircuitBreaker, RedisStore, RedisTarget,
    Snapshot,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3_async_runtimes::tokio::future_into_py;

use crate::permit::{NativePermit, NativeTransitions};
use crate::poll::acquire_now;
use crate::{block_on, errors, runtime};

/// A count setting as `u32`, or a `ValueError` naming it.
fn count(field: &str, value: i64) -> PyResult<u32> {
    u32::try_from(value).map_err(|_| {
        errors::value_error(format!(
            "invalid breaker config: `{field}` is {value}, but it must be at least 1"
        ))
    })
}

/// A duration setting in seconds, or a `ValueError` naming it.
pub(crate) fn seconds(field: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        errors::value_error(format!(
            "invalid setting: `{field}` is {value}, but it must be a finite number of seconds, at least 0"
        ))
    })
}

/// The trip policies' keyword arguments (`None`: off, or the crate's
/// default); see `BreakerConfig`. Made once in Python, and handed to
/// `check_config` and `NativeBreaker`.
#[pyclass(frozen, module = "fleet_breaker._native")]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Policies {
    failure_rate_threshold: Option<f64>,
    slow_call_duration: Option<f64>,
    slow_call_rate_threshold: Option<f64>,
    window: Option<f64>,
    minimum_calls: Option<i64>,
    min_reporting_pods: Option<i64>,
    backoff_jitter: Option<f64>,
}

#[pymethods]
impl Policies {
    #[new]
    #[pyo3(signature = (
        *, failure_rate_threshold=None, slow_call_duration=None, slow_call_rate_threshold=None,
        window=None, minimum_calls=None, min_reporting_pods=None, backoff_jitter=None
    ))]
    fn new(
        failure_rate_threshold: Option<f64>,
        slow_call_duration: Option<f64>,
        slow_call_rate_threshold: Option<f64>,
        window: Option<f64>,
        minimum_calls: Option<i64>,
        min_reporting_pods: Option<i64>,
        backoff_jitter: Option<f64>,
    ) -> Self {
        Self {
            failure_rate_threshold,
            slow_call_duration,
            slow_call_rate_threshold,
            window,
            minimum_calls,
            min_reporting_pods,
            backoff_jitter,
        }
    }
}

/// The breaker config of the Python keyword arguments, validated by the crate.
fn config(
    failure_threshold: i64,
    recovery_timeout: f64,
    half_open_max_calls: i64,
    backoff_multiplier: f64,
    base_backoff: f64,
    max_backoff: f64,
    policies: Policies,
) -> PyResult<BreakerConfig> {
    let slow = |d| seconds("slow_call_duration", d);
    let mut builder = BreakerConfig::builder()
        .failure_threshold(count("failure_threshold", failure_threshold)?)
        .recovery_timeout(seconds("recovery_timeout", recovery_timeout)?)
        .half_open_max_calls(count("half_open_max_calls", half_open_max_calls)?)
        .backoff_multiplier(backoff_multiplier)
        .base_backoff(seconds("base_backoff", base_backoff)?)
        .max_backoff(seconds("max_backoff", max_backoff)?)
        .failure_rate_threshold(policies.failure_rate_threshold)
        .slow_call_duration(policies.slow_call_duration.map(slow).transpose()?)
        .slow_call_rate_threshold(policies.slow_call_rate_threshold);
    if let Some(window) = policies.window {
        builder = builder.window(seconds("window", window)?);
    }
    if let Some(n) = policies.minimum_calls {
        builder = builder.minimum_calls(count("minimum_calls", n)?);
    }
    if let Some(n) = policies.min_reporting_pods {
        builder = builder.min_reporting_pods(count("min_reporting_pods", n)?);
    }
    if let Some(spread) = policies.backoff_jitter {
        builder = builder.backoff_jitter(spread);
    }
    builder.build().map_err(errors::value_error)
}

/// Checks breaker settings: `ValueError` naming the first broken rule.
#[pyfunction]
#[pyo3(signature = (
    failure_threshold, recovery_timeout, half_open_max_calls, backoff_multiplier,
    base_backoff, max_backoff, policies=None
))]
pub(crate) fn check_config(
    failure_threshold: i64,
    recovery_timeout: f64,
    half_open_max_calls: i64,
    backoff_multiplier: f64,
    base_backoff: f64,
    max_backoff: f64,
    policies: Option<PyRef<'_, Policies>>,
) -> PyResult<()> {
    config(
        failure_threshold,
        recovery_timeout,
        half_open_max_calls,
        backoff_multiplier,
        base_backoff,
        max_backoff,
        policies.map_or_else(Policies::default, |p| *p),
    )
    .map(|_| ())
}

/// Checks an agent id: `ValueError` saying what is wrong with it.
#[pyfunction]
pub(crate) fn check_agent_id(agent_id: &str) -> PyResult<()> {
    AgentId::new(agent_id)
        .map(|_| ())
        .map_err(errors::value_error)
}

pub(crate) fn agent(agent_id: &str) -> PyResult<AgentId> {
    AgentId::new(agent_id).map_err(errors::value_error)
}

fn policy(name: &str) -> PyResult<StorePolicy> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|_| {
        errors::value_error(format!(
            "invalid setting: `store_policy` is {name:?}, but it must be \"fail_local\", \"fail_open\" or \"fail_closed\""
        ))
    })
}

pub(crate) fn json(value: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// An agent's metrics; one never called is reported fresh (closed, zero
/// counters), as the router's health report does.
async fn metrics_of(
    breaker: &CircuitBreaker,
    agent: &AgentId,
) -> Result<AgentMetrics, BreakerError> {
    match breaker.metrics(agent).await {
        Err(BreakerError::UnknownAgent(_)) => {
            let fresh = Snapshot::fresh(breaker.config());
            Ok(AgentMetrics::from_snapshot_in(
                agent,
                &fresh,
                SystemClock.now_ms(),
                breaker.config(),
            ))
        }
        other => other,
    }
}

/// A [`CircuitBreaker`]: on the embedded store without a URL, else on the
/// Redis the URL names (`redis://`, `rediss://`, `redis+cluster://`,
/// `redis+sentinel://`, as [`RedisTarget::parse`] reads them).
#[pyclass(frozen, module = "fleet_breaker._native")]
#[derive(Debug)]
pub(crate) struct NativeBreaker {
    pub(crate) breaker: CircuitBreaker,
}

#[pymethods]
impl NativeBreaker {
    #[new]
    #[pyo3(signature = (
        failure_threshold, recovery_timeout, half_open_max_calls, backoff_multiplier,
        base_backoff, max_backoff, redis_url=None, prefix=None, store_policy=None,
        instance_id=None, redis_timeout=None, max_staleness=None, flush_interval=None,
        policies=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        failure_threshold: i64,
        recovery_timeout: f64,
        half_open_max_calls: i64,
        backoff_multiplier: f64,
        base_backoff: f64,
        max_backoff: f64,
        redis_url: Option<String>,
        prefix: Option<String>,
        store_policy: Option<&str>,
        instance_id: Option<String>,
        redis_timeout: Option<f64>,
        max_staleness: Option<f64>,
        flush_interval: Option<f64>,
        policies: Option<PyRef<'_, Policies>>,
    ) -> PyResult<Self> {
        let config = config(
            failure_threshold,
            recovery_timeout,
            half_open_max_calls,
            backoff_multiplier,
            base_backoff,
            max_backoff,
            policies.map_or_else(Policies::default, |p| *p),
        )?;
        let mut builder = CircuitBreaker::builder()
            .config(config)
            .policy(policy(store_policy.unwrap_or("fail_local"))?);
        if let Some(id) = instance_id {
            builder = builder.instance_id(id);
        }
        if let Some(s) = max_staleness {
            builder = builder.max_staleness(seconds("max_staleness", s)?);
        }
        if let Some(s) = flush_interval {
            builder = builder.flush_interval(seconds("flush_interval", s)?);
        }
        let Some(url) = redis_url else {
            return Ok(Self {
                breaker: builder.build().map_err(errors::value_error)?,
            });
        };
        let target = RedisTarget::parse(&url).map_err(|e| errors::store(py, &e))?;
        let mut store = RedisStore::builder_for(target);
        if let Some(prefix) = prefix {
            store = store.prefix(prefix);
        }
        if let Some(t) = redis_timeout {
            store = store.timeout(seconds("redis_timeout", t)?);
        }
        // Built on the runtime, so the watcher and flusher run on its threads.
        let built = block_on(py, async move {
            let store = store.build().await.map_err(Err)?;
            builder.store(store).build().map_err(Ok)
        });
        match built {
            Ok(breaker) => Ok(Self { breaker }),
            Err(Ok(config)) => Err(errors::value_error(config)),
            Err(Err(store)) => Err(errors::store(py, &store)),
        }
    }

    /// A permit for `agent_id`: the `NativePermit` itself when decided at
    /// once (the local cache, the embedded store), else an awaitable of it.
    /// A refusal raises `CircuitOpenError`.
    fn acquire_now(&self, py: Python<'_>, agent_id: &str) -> PyResult<Py<PyAny>> {
        match acquire_now(&self.breaker, &agent(agent_id)?) {
            Ok(Ok(permit)) => Ok(NativePermit::new(permit)
                .into_pyobject(py)?
                .into_any()
                .unbind()),
            Ok(Err(rejected)) => Err(errors::rejected(py, &rejected)),
            Err(pending) => Ok(future_into_py(py, async move {
                match pending.await {
                    Ok(permit) => Ok(NativePermit::new(permit)),
                    Err(rejected) => Err(Python::attach(|py| errors::rejected(py, &rejected))),
                }
            })?
            .unbind()),
        }
    }

    /// `async with` this to run a block under a permit.
    fn guard(&self, agent_id: &str) -> PyResult<crate::guard::NativeGuard> {
        Ok(crate::guard::NativeGuard::new(
            self.breaker.clone(),
            agent(agent_id)?,
        ))
    }

    /// The agent's metrics as JSON (blocks with the GIL released).
    fn metrics_json(&self, py: Python<'_>, agent_id: &str) -> PyResult<String> {
        let agent = agent(agent_id)?;
        let metrics = block_on(py, metrics_of(&self.breaker, &agent));
        json(&metrics.map_err(|e| errors::breaker(py, &e))?)
    }

    /// An awaitable of the agent's metrics as JSON.
    fn metrics_json_async<'py>(
        &self,
        py: Python<'py>,
        agent_id: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let agent = agent(agent_id)?;
        let breaker = self.breaker.clone();
        future_into_py(py, async move {
            let metrics = metrics_of(&breaker, &agent).await;
            Python::attach(|py| json(&metrics.map_err(|e| errors::breaker(py, &e))?))
        })
    }

    /// The admin reset, fleet-wide: the transition as JSON, or `None` for
    /// an agent no pod has called.
    fn reset(&self, py: Python<'_>, agent_id: &str) -> PyResult<Option<String>> {
        let agent = agent(agent_id)?;
        match block_on(py, self.breaker.reset(&agent)) {
            Ok(transition) => json(&transition).map(Some),
            Err(BreakerError::UnknownAgent(_)) => Ok(None),
            Err(e) => Err(errors::breaker(py, &e)),
        }
    }

    /// Replaces the agent's own settings, fleet-wide (`settings_json`: an
    /// object of [`AgentSettings`] fields; `{}` clears them); the settings
    /// now stored, as JSON. An unknown field, a wrong type or a value out of
    /// range is a `ValueError`, and nothing is written.
    fn configure(&self, py: Python<'_>, agent_id: &str, settings_json: &str) -> PyResult<String> {
        let agent = agent(agent_id)?;
        let settings: AgentSettings = serde_json::from_str(settings_json)
            .map_err(|e| PyValueError::new_err(format!("invalid agent settings: {e}")))?;
        let snapshot = block_on(py, self.breaker.configure(&agent, settings))
            .map_err(|e| errors::breaker(py, &e))?;
        json(&snapshot.settings)
    }

    /// The agent's own settings as JSON (`{}`: none, or an agent no pod
    /// has called).
    fn settings(&self, py: Python<'_>, agent_id: &str) -> PyResult<String> {
        let agent = agent(agent_id)?;
        match block_on(py, self.breaker.settings(&agent)) {
            Ok(settings) => json(&settings),
            Err(BreakerError::UnknownAgent(_)) => json(&AgentSettings::default()),
            Err(e) => Err(errors::breaker(py, &e)),
        }
    }

    /// The agents this pod opened for itself alone: (agent, seconds left,
    /// the trip condition).
    fn local_opens(&self) -> Vec<(String, f64, &'static str)> {
        self.breaker
            .local_opens()
            .into_iter()
            .map(|(agent, left, reason)| {
                (
                    agent.as_str().to_owned(),
                    left.as_secs_f64(),
                    reason.as_str(),
                )
            })
            .collect()
    }

    /// The agents the store knows.
    fn agents(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let agents = block_on(py, self.breaker.agents()).map_err(|e| errors::breaker(py, &e))?;
        Ok(agents.iter().map(|a| a.as_str().to_owned()).collect())
    }

    /// Sends the outcomes counted locally to the store now.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        block_on(py, self.breaker.flush()).map_err(|e| errors::breaker(py, &e))
    }

    /// Every transition from now on.
    fn transitions(&self) -> NativeTransitions {
        let _guard = runtime().enter();
        NativeTransitions {
            stream: Arc::new(tokio::sync::Mutex::new(Box::pin(self.breaker.subscribe()))),
        }
    }

    /// This pod's id.
    #[getter]
    fn instance_id(&self) -> String {
        self.breaker.instance_id().to_owned()
    }

    /// Whether the pub/sub watcher is connected (a Redis store only).
    fn is_watching(&self) -> bool {
        self.breaker.is_watching()
    }

    /// Whether the pod is in degraded mode (its store unreachable).
    fn is_degraded(&self) -> bool {
        self.breaker.is_degraded()
    }
}
