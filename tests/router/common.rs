//! Fake agents that log their calls, and breakers on a hand-driven clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_breaker::{AgentId, BreakerConfig, CircuitBreaker, ManualClock, MemoryStore};
use futures::future::BoxFuture;

/// How a fake agent answers.
#[derive(Debug, Clone)]
pub(crate) enum Behave {
    /// `Ok("<agent> did <data>")` at once.
    Serve,
    /// `Err(reason)` at once.
    Fail(&'static str),
    /// Never answers.
    Hang,
    /// Answers `Ok` after this long (tokio time).
    Slow(Duration),
}

/// A set of fake agents; agents not listed serve.
#[derive(Debug, Clone, Default)]
pub(crate) struct Agents {
    behave: Arc<Mutex<HashMap<String, Behave>>>,
    calls: Arc<Mutex<Vec<String>>>,
}

/// The task function type of [`Agents::task_fn`].
pub(crate) type TaskFn =
    Box<dyn Fn(AgentId, u32) -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

impl Agents {
    pub(crate) fn new(behave: &[(&str, Behave)]) -> Self {
        let agents = Self::default();
        for (agent, b) in behave {
            agents.set(agent, b.clone());
        }
        agents
    }

    pub(crate) fn set(&self, agent: &str, behave: Behave) {
        self.behave.lock().unwrap().insert(agent.to_owned(), behave);
    }

    /// Every call so far, in order, by agent id.
    pub(crate) fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    pub(crate) fn task_fn(&self) -> TaskFn {
        let agents = self.clone();
        Box::new(move |agent: AgentId, data: u32| {
            agents.calls.lock().unwrap().push(agent.to_string());
            let behave = agents
                .behave
                .lock()
                .unwrap()
                .get(agent.as_str())
                .cloned()
                .unwrap_or(Behave::Serve);
            Box::pin(async move {
                match behave {
                    Behave::Serve => Ok(format!("{agent} did {data}")),
                    Behave::Fail(reason) => Err(reason.to_owned()),
                    Behave::Hang => std::future::pending().await,
                    Behave::Slow(d) => {
                        // The agent's latency: the scenario, not a wait.
                        tokio::time::sleep(d).await;
                        Ok(format!("{agent} did {data}"))
                    }
                }
            })
        })
    }
}

/// A breaker on the embedded store, its clock driven by hand; circuits open
/// after `threshold` consecutive failures, with the default 1.5 s first backoff.
pub(crate) fn breaker(threshold: u32) -> (CircuitBreaker, ManualClock) {
    breaker_with(BreakerConfig::builder().failure_threshold(threshold))
}

pub(crate) fn breaker_with(
    config: fleet_breaker::BreakerConfigBuilder,
) -> (CircuitBreaker, ManualClock) {
    let clock = ManualClock::default();
    let breaker = CircuitBreaker::builder()
        .store(MemoryStore::with_clock(Arc::new(clock.clone())))
        .config(config.build().expect("valid config"))
        .instance_id("pod-test")
        .build()
        .expect("valid breaker");
    (breaker, clock)
}

pub(crate) fn id(agent: &str) -> AgentId {
    AgentId::new(agent).expect("valid agent id")
}

/// Opens `agent`'s circuit with `threshold` failed calls through the breaker.
pub(crate) async fn trip(breaker: &CircuitBreaker, agent: &str) {
    let agent = id(agent);
    for _ in 0..breaker.config().failure_threshold {
        breaker
            .acquire(&agent)
            .await
            .expect("closed circuit admits")
            .failure("tripped by the test")
            .await;
    }
}
