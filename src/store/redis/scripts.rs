//! The Lua scripts of `lua/`, loaded with `include_str!`, and the arguments
//! they take.
//!
//! Each operation's script is `lua/epoch.lua` (the agent's epoch, which the
//! others use), `lua/lib.lua` (the shared prelude: refresh, transitions,
//! saving, publishing), then `lua/load.lua` (reading and checking the stored
//! state, repairing a corrupt one), then the operation's own file, so the
//! shared code exists once in the tree. Each [`Script`] is built,
//! and its SHA1 computed, once per process; [`RedisStore`](super::RedisStore)
//! invokes it by hash and reloads it on `NOSCRIPT`.
//!
//! The KEYS and ARGV layout below is the one documented at the top of
//! `lua/lib.lua`; the two change together.

use std::sync::LazyLock;

use ::redis::Script;

use super::Keys;
use crate::agent_id::AgentId;
use crate::config::BreakerConfig;

/// Builds a script from the preludes, the loading, and one operation's file.
macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/epoch.lua"),
                include_str!("lua/lib.lua"),
                include_str!("lua/load.lua"),
                include_str!(concat!("lua/", $file)),
            ))
        })
    };
}

/// `lua/acquire.lua`: [`crate::model::acquire`].
pub(super) static ACQUIRE: LazyLock<Script> = script!("acquire.lua");
/// `lua/record.lua`: [`crate::model::record`].
pub(super) static RECORD: LazyLock<Script> = script!("record.lua");
/// `lua/reset.lua`: [`crate::model::reset`].
pub(super) static RESET: LazyLock<Script> = script!("reset.lua");
/// `lua/force.lua`: [`crate::model::force`].
pub(super) static FORCE: LazyLock<Script> = script!("force.lua");
/// `lua/snapshot.lua`: [`crate::model::refresh`] alone.
pub(super) static SNAPSHOT: LazyLock<Script> = script!("snapshot.lua");
/// `lua/flush.lua`: [`crate::model::flush`].
pub(super) static FLUSH: LazyLock<Script> = script!("flush.lua");

/// `lua/configure.lua`: [`crate::model::configure`].
pub(super) static CONFIGURE: LazyLock<Script> = script!("configure.lua");

/// `lua/census.lua`: one agent's census field put right from its state.
pub(super) static CENSUS: LazyLock<Script> = script!("census.lua");

/// Every script, for loading them all at once.
pub(super) fn all() -> [&'static Script; 7] {
    [
        &*ACQUIRE,
        &*RECORD,
        &*RESET,
        &*FORCE,
        &*SNAPSHOT,
        &*FLUSH,
        &*CONFIGURE,
    ]
}

/// The KEYS and ARGV of one script call.
#[derive(Debug)]
pub(super) struct Call {
    /// `KEYS[1..6]`: state, probes, agents, transitions, census, config;
    /// on a cluster state, probes and config (the agent's slot), see
    /// `lua/lib.lua`.
    pub(super) keys: Vec<String>,
    /// `ARGV`: the twelve common arguments, then the operation's own.
    pub(super) args: Vec<String>,
    /// The last `ARGV`, after the operation's own: the trip policies
    /// (empty: not passed, for `census.lua`, which takes none).
    pub(super) policies: String,
}

impl Call {
    /// The keys of `agent` and the twelve arguments every script takes first.
    ///
    /// `now_override_ms` is the test-only clock override; `None` makes the
    /// script read Redis `TIME`. `cluster` passes only the agent's own keys:
    /// the script then leaves `PREFIX:agents`, `PREFIX:transitions` and
    /// `PREFIX:not_closed`, which live in other slots, to the caller.
    pub(super) fn new(
        keys: &Keys,
        agent: &AgentId,
        config: &BreakerConfig,
        transitions_max_len: u64,
        now_override_ms: Option<u64>,
        cluster: bool,
    ) -> Self {
        let args = vec![
            agent.as_str().to_owned(),
            now_override_ms.map_or_else(String::new, |ms| ms.to_string()),
            keys.events(),
            transitions_max_len.to_string(),
            config.failure_threshold.to_string(),
            config.half_open_max_calls.to_string(),
            config.base_backoff_ms().to_string(),
            // Rust's Display of an f64 is the shortest text that reads back
            // as the same double, so Lua's `tonumber` gets the exact value.
            config.backoff_multiplier.to_string(),
            config.max_backoff_ms().to_string(),
            config.recovery_timeout_ms().to_string(),
            keys.counts(),
            config.idle_ttl_ms().to_string(),
        ];
        let keys = if cluster {
            vec![keys.state(agent), keys.probes(agent), keys.config(agent)]
        } else {
            vec![
                keys.state(agent),
                keys.probes(agent),
                keys.agents(),
                keys.transitions(),
                keys.not_closed(),
                keys.config(agent),
            ]
        };
        Self {
            keys,
            args,
            policies: policies(config),
        }
    }

    /// Appends an operation's own argument.
    pub(super) fn arg(mut self, value: impl Into<String>) -> Self {
        self.args.push(value.into());
        self
    }
}

/// The policies argument (see `lua/lib.lua`): seven decimals, 0 for off.
fn policies(config: &BreakerConfig) -> String {
    format!(
        "{} {} {} {} {} {} {}",
        config.failure_rate_threshold.unwrap_or(0.0),
        config.slow_call_ms(),
        config.slow_call_rate_threshold.unwrap_or(0.0),
        crate::config::duration_ms(config.window),
        config.minimum_calls,
        config.min_reporting_pods,
        config.backoff_jitter,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_builds_with_a_hash_of_its_own() {
        for (script, name) in [
            (&ACQUIRE, "acquire.lua"),
            (&RECORD, "record.lua"),
            (&RESET, "reset.lua"),
            (&FORCE, "force.lua"),
            (&SNAPSHOT, "snapshot.lua"),
            (&FLUSH, "flush.lua"),
        ] {
            assert_eq!(script.get_hash().len(), 40, "{name}");
        }
        let hashes: std::collections::HashSet<&str> =
            [&ACQUIRE, &RECORD, &RESET, &FORCE, &SNAPSHOT, &FLUSH]
                .iter()
                .map(|script| script.get_hash())
                .collect();
        assert_eq!(hashes.len(), 6);
    }

    #[test]
    fn the_multiplier_is_passed_as_its_shortest_exact_text() {
        let config = BreakerConfig {
            backoff_multiplier: 1.1,
            ..BreakerConfig::default()
        };
        let agent = AgentId::new("agent-1").expect("valid id");
        let call = Call::new(&Keys::default(), &agent, &config, 10, None, false);
        assert_eq!(call.args[7], "1.1");
        assert_eq!(call.args[1], "", "no override: Redis TIME");
        assert_eq!(call.keys[0], "fleet-breaker:{agent-1}:state");
        assert_eq!(call.keys.len(), 6);
        assert_eq!(call.keys[5], "fleet-breaker:{agent-1}:config");
        assert_eq!(call.policies, "0 0 0 10000 20 1 0");
        assert_eq!(call.args[11], "604800000", "idle_ttl_ms: 7 days");
    }

    #[test]
    fn a_cluster_call_names_only_the_keys_of_the_agents_slot() {
        let agent = AgentId::new("agent-1").expect("valid id");
        let call = Call::new(
            &Keys::default(),
            &agent,
            &BreakerConfig::default(),
            10,
            None,
            true,
        );
        assert_eq!(
            call.keys,
            [
                "fleet-breaker:{agent-1}:state",
                "fleet-breaker:{agent-1}:probes",
                "fleet-breaker:{agent-1}:config"
            ]
        );
    }
}
