//! [`FailoverRouter`]: priority failover over shared breakers, with health,
//! recent failures and the admin reset.
//!
//! - `builder.rs`: [`FailoverRouterBuilder`], the settings and their checks.
//! - `route.rs`: [`FailoverRouter::route_task`] and [`Routed`].
//! - `agents.rs`: [`AgentInput`], the agent list and its checks.
//! - `classify.rs`: [`Classify`], what a result says about an agent.
//! - `error.rs`: [`RouteError`], [`AllAgentsFailed`], [`Attempt`].
//! - `health.rs`: [`HealthStatus`], recent failures, reset.
//! - `events.rs`: the batched fleet-wide routing-decision counter.
//! - `tower.rs` (feature `tower`): a breaker-guarded `tower::Service`.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::agent_id::AgentId;
use crate::breaker::CircuitBreaker;
use crate::store::{MemoryStore, RoutingJournal};

mod agents;
mod builder;
mod classify;
mod error;
mod events;
mod health;
mod route;
#[cfg(feature = "tower")]
pub mod tower;

pub use agents::AgentInput;
pub use builder::{DEFAULT_EVENTS_FLUSH_INTERVAL, DEFAULT_MAX_RETRIES, FailoverRouterBuilder};
pub use classify::{Classify, DefaultClassifier};
pub use error::{AgentReport, AllAgentsFailed, Attempt, RouteError, RouterConfigError};
pub use health::{FleetCensus, HealthStatus, HealthSummary};
pub use route::Routed;

use events::EventCounter;

/// Most distinct agents a router remembers from its routes for
/// [`HealthStatus`] (agents the store knows are always reported).
const MAX_NAMED_AGENTS: usize = 10_000;

/// Routes each task to the first agent, in priority order, whose circuit
/// admits it and whose call succeeds; the circuits are those of a shared
/// [`CircuitBreaker`], so every pod of a fleet routes on one view.
///
/// ```
/// use fleet_breaker::CircuitBreaker;
/// use fleet_breaker::router::FailoverRouter;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let router = FailoverRouter::builder(CircuitBreaker::in_memory())
///     .max_retries(3)
///     .build()
///     .unwrap();
/// let routed = router
///     .route_task("task-1", ["agent-1", "agent-2"], |agent, n: u32| async move {
///         if agent.as_str() == "agent-1" { Err("connection refused") } else { Ok(n * 2) }
///     }, 21)
///     .await
///     .unwrap();
/// assert_eq!((routed.value, routed.agent.as_str()), (42, "agent-2"));
/// # }
/// ```
///
/// ## Behavior
///
/// - The agent list is checked before anything else: an empty list, a
///   repeated agent or an invalid id is a [`RouteError`] and no call is made.
/// - Agents are asked in order. One whose circuit rejects is skipped at once
///   (no call, no latency) and does not count against `max_retries`.
/// - At most `max_retries` calls are made per task; agents left over are
///   reported [`Attempt::NotTried`].
/// - Each call runs under a breaker permit, with the per-attempt timeout if
///   one is set (a call past it is dropped and counts as a failure). The
///   task's data is cloned for each call.
/// - The [classifier](Classify) judges each result. `Success` or `Neutral`
///   on `Ok`: the value is returned. `Failure` (on `Ok` or `Err`): recorded,
///   and the next agent is tried. `Success` or `Neutral` on `Err`: the
///   error is returned as [`RouteError::Inner`] without trying other agents,
///   since it says nothing against this agent (a caller's 4xx, say).
/// - A `Success` slower than `slow_call_threshold` is recorded as a failure,
///   so a consistently slow agent opens; its value is still returned. With
///   the breaker's slow-call rate policy on (`slow_call_rate_threshold`),
///   it is instead a success and a slow call, the policy's input (as is a
///   call slower than the breaker's own `slow_call_duration`).
/// - A cancelled `route_task` (its future dropped) leaves the call in flight
///   neutral: a probe permit is handed back and nothing is counted.
/// - Every failure (error, timeout, slow call) is appended to the
///   fleet-wide recent-failures record with the task id and this pod's id,
///   except while the pod is in degraded mode (its store unreachable; see
///   [`CircuitBreaker`]), when it is only logged: routing makes no store call.
/// - Panic mode (off by default): when every agent is rejected, the one
///   whose circuit reopens soonest (smallest `retry_after`, open or
///   half-open, never forced open nor rejected for an unreachable store) is
///   called once anyway. This is Envoy's panic threshold: when a whole pool
///   looks unhealthy, the health signal is more likely wrong (a fleet-wide
///   false trip, a shared dependency blip) than every agent dead, and
///   failing every request is the worst answer. The risk: a truly dead or
///   overloaded agent gets traffic it was being shielded from, each task
///   pays a doomed call's latency, and the panic call bypasses the
///   half-open probe limit. Its outcome is not recorded in the breaker (no
///   permit was granted); a failure is still journaled.
/// - Each route is counted as one routing decision, locally at once and
///   fleet-wide within `flush_interval` (see [`HealthStatus::routing_events`]).
/// - Each route runs in a `tracing` span `route_task` (task id, agent count);
///   skips and failures are `debug` events, and no agent serving is a `warn`.
/// - Clones share everything; the handle is cheap to clone.
pub struct FailoverRouter<C = DefaultClassifier> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for FailoverRouter<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<C> {
    breaker: CircuitBreaker,
    settings: Settings,
    classifier: C,
    events: Arc<EventCounter>,
    /// Recent routing failures and the routing-decision count: the
    /// store's (fleet-wide on Redis), else one of this router's own.
    journal: Arc<dyn RoutingJournal>,
    /// Agents named in this router's routes, reported by `health_status`
    /// even if no pod has called them yet.
    named: RwLock<HashSet<AgentId>>,
}

/// The validated settings of a router.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    max_retries: u32,
    attempt_timeout: Option<Duration>,
    slow_call_threshold: Option<Duration>,
    panic_mode: bool,
    failures_cap: usize,
    flush_interval: Duration,
}

impl<C> fmt::Debug for FailoverRouter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailoverRouter")
            .field("breaker", &self.inner.breaker)
            .field("settings", &self.inner.settings)
            .field("classifier", &std::any::type_name::<C>())
            .field("events", &self.inner.events)
            .finish()
    }
}

impl FailoverRouter {
    /// A builder over `breaker` with the defaults: 3 calls per task, no
    /// timeout, the default classifier, no slow-call threshold, panic mode
    /// off, 1,000 recent failures kept, a 1 s flush interval.
    pub fn builder(breaker: CircuitBreaker) -> FailoverRouterBuilder {
        FailoverRouterBuilder::new(breaker)
    }

    /// A router over `breaker` with the defaults of [`builder`](Self::builder).
    #[must_use]
    pub fn new(breaker: CircuitBreaker) -> Self {
        Self::from_parts(breaker, Settings::default(), DefaultClassifier)
    }
}

impl<C> FailoverRouter<C> {
    fn from_parts(breaker: CircuitBreaker, settings: Settings, classifier: C) -> Self {
        let journal = breaker
            .store()
            .journal()
            .unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let events = EventCounter::new(Arc::clone(&journal), settings.flush_interval);
        Self {
            inner: Arc::new(Inner {
                breaker,
                settings,
                classifier,
                events,
                journal,
                named: RwLock::new(HashSet::new()),
            }),
        }
    }

    /// The breaker the router decides with.
    #[must_use]
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.inner.breaker
    }

    /// Most calls made per task.
    #[must_use]
    pub fn max_retries(&self) -> u32 {
        self.inner.settings.max_retries
    }

    /// Whether panic mode is on.
    #[must_use]
    pub fn panic_mode(&self) -> bool {
        self.inner.settings.panic_mode
    }

    /// Remembers the agents of a route for health reports.
    fn note_agents(&self, agents: &[AgentId]) {
        let named = &self.inner.named;
        let known = {
            let set = named.read().unwrap_or_else(PoisonError::into_inner);
            agents.iter().all(|a| set.contains(a)) || set.len() >= MAX_NAMED_AGENTS
        };
        if !known {
            let mut set = named.write().unwrap_or_else(PoisonError::into_inner);
            for agent in agents {
                if set.len() >= MAX_NAMED_AGENTS {
                    break;
                }
                set.insert(agent.clone());
            }
        }
    }

    fn named_agents(&self) -> Vec<AgentId> {
        let set = self
            .inner
            .named
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        set.iter().cloned().collect()
    }
}
