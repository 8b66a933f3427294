//! [`HealthStatus`], recent failures and the admin reset.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::FailoverRouter;
use crate::agent_id::AgentId;
use crate::breaker::{AgentMetrics, BreakerError, StoreStatus};
use crate::model::{CircuitState, Snapshot, Transition};
use crate::store::{FailureRecord, StoreError};

/// The fleet's routing health, in the shape of the original specification:
///
/// ```json
/// {"total_agents": 3, "open_circuits": 1, "half_open_circuits": 0,
///  "healthy_agents": 2, "corrupt_agents": 0, "routing_events": 127, "store": "ok",
///  "agents": {"agent-1": {"agent_id": "agent-1", "state": "open",
///                         "metrics": {"failure_count": 5, "...": "..."}, "...": "..."}}}
/// ```
///
/// While the pod is in degraded mode (see
/// [`CircuitBreaker`](crate::CircuitBreaker)), `"store"` is `"degraded"`,
/// with `"store_degraded_since_ms"` (ms since the Unix epoch) and
/// `"store_degraded_reason"` (the store error) beside it, and the report is
/// this pod's own view, made without the store: see
/// [`FailoverRouter::health_status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthStatus {
    /// Agents reported: every agent the store knows (called by any pod),
    /// plus any this router was asked to route to that no pod has called
    /// yet (reported closed, with zero counters).
    pub total_agents: usize,
    /// Circuits open or forced open.
    pub open_circuits: usize,
    /// Circuits half-open (recovering).
    pub half_open_circuits: usize,
    /// Circuits closed or forced closed: agents ready to take calls.
    pub healthy_agents: usize,
    /// Agents whose stored state is corrupt (an addition to the original
    /// shape): reported in `agents` with `"state": "corrupt"` and the field
    /// named, counted in `total_agents` and in none of the counts above.
    /// An admin reset or force repairs them.
    #[serde(default)]
    pub corrupt_agents: usize,
    /// Routing decisions (one per `route_task` with a valid agent list)
    /// made by every pod of the fleet. Each pod adds its
    /// own in batches, every flush interval (default 1 s), and before it
    /// answers this; so this pod's decisions are all counted, and other
    /// pods' may lag by up to one flush interval. When the counter in the
    /// store is not a number (set by hand, say), this pod's estimate.
    pub routing_events: u64,
    /// Each agent's state and counters, by agent id.
    pub agents: BTreeMap<AgentId, AgentMetrics>,
    /// Whether this pod decides with the store or is in degraded mode.
    #[serde(flatten, with = "store_field")]
    pub store: StoreStatus,
}

/// The counts of a [`HealthStatus`] without its agents, in the same JSON
/// fields: what `GET /api/circuit-breaker/health/summary` answers.
///
/// ```json
/// {"total_agents": 3, "open_circuits": 1, "half_open_circuits": 0,
///  "healthy_agents": 2, "corrupt_agents": 0, "routing_events": 127, "store": "ok"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSummary {
    /// As [`HealthStatus::total_agents`].
    pub total_agents: usize,
    /// As [`HealthStatus::open_circuits`].
    pub open_circuits: usize,
    /// As [`HealthStatus::half_open_circuits`].
    pub half_open_circuits: usize,
    /// As [`HealthStatus::healthy_agents`].
    pub healthy_agents: usize,
    /// As [`HealthStatus::corrupt_agents`].
    #[serde(default)]
    pub corrupt_agents: usize,
    /// As [`HealthStatus::routing_events`].
    pub routing_events: u64,
    /// As [`HealthStatus::store`].
    #[serde(flatten, with = "store_field")]
    pub store: StoreStatus,
}

/// The fleet's counts and the agents whose circuit is not closed, read
/// without reading every agent: [`FailoverRouter::census`].
///
/// A corrupt state (edited by hand) is counted once a script refused it
/// or a read found it: until then the agent counts by the state it was
/// last saved in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetCensus {
    /// The counts, as [`HealthStatus`] has them.
    pub summary: HealthSummary,
    /// Every agent whose circuit is not closed (open, half-open, forced
    /// open or forced closed), with its state, by agent id.
    pub not_closed: BTreeMap<AgentId, CircuitState>,
    /// Agents whose stored state is corrupt.
    pub corrupt: BTreeSet<AgentId>,
}

/// [`HealthStatus::store`] in JSON: `"store": "ok" | "degraded"`, plus
/// `"store_degraded_since_ms"` and `"store_degraded_reason"` when degraded.
mod store_field {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::breaker::StoreStatus;

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Ok,
        Degraded,
    }

    #[derive(Serialize, Deserialize)]
    struct Flat {
        store: Kind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        store_degraded_since_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        store_degraded_reason: Option<String>,
    }

    pub(super) fn serialize<S: Serializer>(status: &StoreStatus, s: S) -> Result<S::Ok, S::Error> {
        let flat = match status {
            StoreStatus::Ok => Flat {
                store: Kind::Ok,
                store_degraded_since_ms: None,
                store_degraded_reason: None,
            },
            StoreStatus::Degraded { since_ms, reason } => Flat {
                store: Kind::Degraded,
                store_degraded_since_ms: Some(*since_ms),
                store_degraded_reason: Some(reason.clone()),
            },
        };
        flat.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StoreStatus, D::Error> {
        let flat = Flat::deserialize(d)?;
        Ok(match flat.store {
            Kind::Ok => StoreStatus::Ok,
            Kind::Degraded => StoreStatus::Degraded {
                since_ms: flat.store_degraded_since_ms.unwrap_or(0),
                reason: flat.store_degraded_reason.unwrap_or_default(),
            },
        })
    }
}

impl HealthStatus {
    /// The counts without the agents.
    #[must_use]
    pub fn summary(&self) -> HealthSummary {
        HealthSummary {
            total_agents: self.total_agents,
            open_circuits: self.open_circuits,
            half_open_circuits: self.half_open_circuits,
            healthy_agents: self.healthy_agents,
            corrupt_agents: self.corrupt_agents,
            routing_events: self.routing_events,
            store: self.store.clone(),
        }
    }

    fn from_agents(
        agents: BTreeMap<AgentId, AgentMetrics>,
        routing_events: u64,
        store: StoreStatus,
    ) -> Self {
        let count = |f: fn(CircuitState) -> bool| {
            agents
                .values()
                .filter(|m| !m.is_corrupt() && f(m.state))
                .count()
        };
        Self {
            total_agents: agents.len(),
            open_circuits: count(|s| matches!(s, CircuitState::Open | CircuitState::ForcedOpen)),
            half_open_circuits: count(|s| s == CircuitState::HalfOpen),
            healthy_agents: count(CircuitState::admits_all),
            corrupt_agents: agents.values().filter(|m| m.is_corrupt()).count(),
            routing_events,
            agents,
            store,
        }
    }
}

impl<C> FailoverRouter<C> {
    /// The health of every agent and the fleet-wide routing-decision count.
    ///
    /// Flushes this pod's pending routing decisions first, then reads each
    /// agent's snapshot at once ([`agents_health`](Self::agents_health)). An
    /// agent whose stored state is corrupt is reported as such (see
    /// [`HealthStatus::corrupt_agents`]), the others as usual.
    ///
    /// In degraded mode it answers at once without the store, from what
    /// this pod knows: `"store": "degraded"`; each agent's state as this pod
    /// decides it (the `FailLocal` fallback's, else the last snapshot the
    /// store answered); agents never seen reported fresh; `routing_events`
    /// the last fleet-wide total this pod read plus its own decisions since.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Store`] when the store fails (and the pod is not yet
    /// in degraded mode).
    pub async fn health_status(&self) -> Result<HealthStatus, BreakerError> {
        if self.inner.breaker.is_degraded() {
            return Ok(self.local_health());
        }
        let routing_events = self.routing_events().await?;
        let breaker = &self.inner.breaker;
        // This pod's locally counted outcomes first, as with routing events;
        // other pods' reach the store within their flush interval.
        breaker.flush().await?;
        let agents = self.agents_health(self.agent_names().await?).await?;
        Ok(HealthStatus::from_agents(
            agents,
            routing_events,
            breaker.store_status(),
        ))
    }

    /// Every agent health reports: those the store knows and those named
    /// in a route, sorted, without reading any of them.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Store`] when the store fails.
    pub async fn agent_names(&self) -> Result<Vec<AgentId>, BreakerError> {
        let mut names = self.inner.breaker.agents().await?;
        names.extend(self.named_agents());
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The fleet-wide routing-decision count, after this pod's pending
    /// decisions; this pod's estimate when the counter is unreadable.
    async fn routing_events(&self) -> Result<u64, BreakerError> {
        match self.inner.events.flush().await {
            Ok(total) => Ok(total),
            // A counter that is not a number (set by hand, say) hides no
            // agent: this pod's estimate stands in for it.
            Err(error) if !error.is_store_unavailable() => {
                tracing::warn!(%error, "health: the fleet's routing-events counter is unreadable; reporting this pod's estimate");
                Ok(self.inner.events.estimate())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Each agent of `agents`, read fresh from the store at once and
    /// without writing ([`CircuitBreaker::read_many`](crate::CircuitBreaker::read_many)):
    /// an agent never called is reported as a fresh circuit, a corrupt one
    /// as such.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Store`] when the store fails.
    pub async fn agents_health(
        &self,
        agents: Vec<AgentId>,
    ) -> Result<BTreeMap<AgentId, AgentMetrics>, BreakerError> {
        let breaker = &self.inner.breaker;
        let read = breaker.read_many(&agents).await?;
        let now_ms = breaker.clock().now_ms();
        let fresh = Snapshot::fresh(breaker.config());
        let mut health = BTreeMap::new();
        for (agent, snapshot) in agents.into_iter().zip(read) {
            let metrics = match snapshot {
                Ok(Some(snapshot)) => {
                    AgentMetrics::from_snapshot_in(&agent, &snapshot, now_ms, breaker.config())
                }
                // Named in a route, never called by any pod: a fresh circuit.
                Ok(None) => {
                    AgentMetrics::from_snapshot_in(&agent, &fresh, now_ms, breaker.config())
                }
                // One corrupt agent is reported as such; the others as usual.
                Err(StoreError::Corrupt { corruption, .. }) => {
                    tracing::warn!(agent = %agent, %corruption, "health: the agent's stored state is corrupt; an admin reset or force repairs it");
                    AgentMetrics::from_corruption(&agent, corruption)
                }
                Err(error) => return Err(error.into()),
            };
            let mut metrics = metrics;
            breaker.note_local_open(&mut metrics);
            health.insert(agent, metrics);
        }
        Ok(health)
    }

    /// The fleet's counts and the agents whose circuit is not closed,
    /// without reading every agent (see [`BreakerStore::census`](crate::store::BreakerStore::census)):
    /// a few commands on Redis however many agents there are.
    ///
    /// `None` when the store cannot count that way, or in degraded mode:
    /// read [`health_status`](Self::health_status) then.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Store`] when the store fails.
    pub async fn census(&self) -> Result<Option<FleetCensus>, BreakerError> {
        let breaker = &self.inner.breaker;
        if breaker.is_degraded() {
            return Ok(None);
        }
        let named = self.named_agents();
        let (routing_events, census) = tokio::join!(self.routing_events(), breaker.census(&named));
        let (routing_events, Some(census)) = (routing_events?, census?) else {
            return Ok(None);
        };
        let total_agents = usize::try_from(census.total).unwrap_or(usize::MAX);
        let open_circuits = census.open();
        let half_open_circuits = census.half_open();
        let corrupt_agents = census.corrupt.len();
        Ok(Some(FleetCensus {
            summary: HealthSummary {
                total_agents,
                open_circuits,
                half_open_circuits,
                healthy_agents: total_agents
                    .saturating_sub(open_circuits + half_open_circuits + corrupt_agents),
                corrupt_agents,
                routing_events,
                store: breaker.store_status(),
            },
            not_closed: census.not_closed,
            corrupt: census.corrupt,
        }))
    }

    /// The health report of a degraded pod, made without the store.
    fn local_health(&self) -> HealthStatus {
        let breaker = &self.inner.breaker;
        let mut agents: BTreeMap<AgentId, AgentMetrics> = breaker
            .local_view()
            .into_iter()
            .map(|(agent, snapshot, now_ms)| {
                let mut metrics =
                    AgentMetrics::from_snapshot_in(&agent, &snapshot, now_ms, breaker.config());
                breaker.note_local_open(&mut metrics);
                (agent, metrics)
            })
            .collect();
        for agent in self.named_agents() {
            agents.entry(agent).or_insert_with_key(|agent| {
                let fresh = Snapshot::fresh(breaker.config());
                AgentMetrics::from_snapshot_in(
                    agent,
                    &fresh,
                    breaker.clock().now_ms(),
                    breaker.config(),
                )
            });
        }
        HealthStatus::from_agents(agents, self.inner.events.estimate(), breaker.store_status())
    }

    /// Up to `limit` routing failures of the whole fleet, newest first.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Store`] when the store fails.
    pub async fn recent_failures(&self, limit: usize) -> Result<Vec<FailureRecord>, BreakerError> {
        Ok(self.inner.journal.recent_failures(limit).await?)
    }

    /// Malformed records of the fleet's failure journal that
    /// [`recent_failures`](Self::recent_failures) skipped so far, in this
    /// process (see [`RoutingJournal::failures_skipped`](crate::store::RoutingJournal::failures_skipped)).
    #[must_use]
    pub fn failures_skipped(&self) -> u64 {
        self.inner.journal.failures_skipped()
    }

    /// The admin reset, fleet-wide: the agent's circuit closed, its counters
    /// zero, its backoff base. Delegates to [`CircuitBreaker::reset`](crate::CircuitBreaker::reset).
    ///
    /// # Errors
    ///
    /// [`BreakerError::InvalidAgentId`] for a bad id,
    /// [`BreakerError::UnknownAgent`] for an agent no pod has called,
    /// [`BreakerError::Store`] when the store fails.
    pub async fn reset_agent(&self, agent: impl AsRef<str>) -> Result<Transition, BreakerError> {
        let agent = AgentId::new(agent.as_ref())?;
        self.inner.breaker.reset(&agent).await
    }

    /// Adds this pod's pending routing decisions to the fleet-wide count now
    /// (a background task does it every flush interval); returns the total.
    /// Call it before a pod shuts down.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Store`] when the store fails; the pending count is
    /// kept for the next flush.
    pub async fn flush_routing_events(&self) -> Result<u64, BreakerError> {
        Ok(self.inner.events.flush().await?)
    }
}
