//! [`Keys`]: the Redis key layout of DESIGN.md section 3.

use crate::agent_id::AgentId;

/// Builds the names of every Redis key and channel of one fleet.
///
/// Every key of one agent shares the hash tag `{AGENT}`, so a script that
/// touches one agent touches one cluster slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The layout under `prefix` (default `fleet-breaker`).
    #[must_use]
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix that namespaces the fleet.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `PREFIX:{AGENT}:state`, the hash of the agent's snapshot.
    #[must_use]
    pub fn state(&self, agent: &AgentId) -> String {
        format!("{}:{{{}}}:state", self.prefix, agent)
    }

    /// `PREFIX:{AGENT}:probes`, the sorted set of probe leases.
    #[must_use]
    pub fn probes(&self, agent: &AgentId) -> String {
        format!("{}:{{{}}}:probes", self.prefix, agent)
    }

    /// `PREFIX:{AGENT}:config`, the hash of the agent's own settings
    /// ([`AgentSettings`](crate::config::AgentSettings)).
    #[must_use]
    pub fn config(&self, agent: &AgentId) -> String {
        format!("{}:{{{}}}:config", self.prefix, agent)
    }

    /// `PREFIX:configs`: pod instance id -> `"FINGERPRINT WRITTEN_MS"` of
    /// its process-wide config, so pods that disagree are told apart.
    #[must_use]
    pub fn configs(&self) -> String {
        format!("{}:configs", self.prefix)
    }

    /// `PREFIX:agents`, the set of known agent ids.
    #[must_use]
    pub fn agents(&self) -> String {
        format!("{}:agents", self.prefix)
    }

    /// `PREFIX:not_closed`, the census: a hash of every agent whose circuit
    /// is not closed, to its state (see `lua/lib.lua`, "Census"), so the
    /// fleet's counts need no read of every agent.
    #[must_use]
    pub fn not_closed(&self) -> String {
        format!("{}:not_closed", self.prefix)
    }

    /// `PREFIX:sweep_lease`: held by the pod sweeping the agents set of
    /// agents forgotten for idleness, so the fleet sweeps once per interval.
    #[must_use]
    pub fn sweep_lease(&self) -> String {
        format!("{}:sweep_lease", self.prefix)
    }

    /// `PREFIX:events`, the pub/sub channel of transitions.
    #[must_use]
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// `PREFIX:counts`, the pub/sub channel of failure-count news: published
    /// when an agent's failure count leaves zero or returns to it without a
    /// transition.
    #[must_use]
    pub fn counts(&self) -> String {
        format!("{}:counts", self.prefix)
    }

    /// `PREFIX:heartbeat`, the pub/sub channel of the fleet heartbeat:
    /// published by the pod holding `PREFIX:heartbeat:lease`, it confirms
    /// every pod's subscription.
    #[must_use]
    pub fn heartbeat(&self) -> String {
        format!("{}:heartbeat", self.prefix)
    }

    /// `PREFIX:heartbeat:lease`, a hash with a TTL: `holder`, the id of
    /// the pod that publishes the heartbeat.
    #[must_use]
    pub fn heartbeat_lease(&self) -> String {
        format!("{}:heartbeat:lease", self.prefix)
    }

    /// `PREFIX:routing_events`, the fleet-wide count of routing decisions.
    #[must_use]
    pub fn routing_events(&self) -> String {
        format!("{}:routing_events", self.prefix)
    }

    /// `PREFIX:transitions`, the capped stream of transitions.
    #[must_use]
    pub fn transitions(&self) -> String {
        format!("{}:transitions", self.prefix)
    }

    /// `PREFIX:failures`, the capped stream of recent routing failures.
    #[must_use]
    pub fn failures(&self) -> String {
        format!("{}:failures", self.prefix)
    }
}

impl Default for Keys {
    fn default() -> Self {
        Self::new(super::DEFAULT_PREFIX)
    }
}
