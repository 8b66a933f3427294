//! The Lua scripts of `lua/`, loaded with `include_str!`, and the arguments
//! they take.
//!
//! Each operation's code is `lua/epoch.lua` (the agent's epoch, which the
//! others use), `lua/lib.lua` (the shared prelude: refresh, transitions,
//! saving, publishing), then `lua/load.lua` (reading and checking the stored
//! state, repairing a corrupt one), then the operation's own file, so the
//! shared code exists once in the tree. It reaches Redis in two forms:
//!
//! - [`LIBRARY`]: a Redis 7 function library holding every operation, each
//!   a function called by `FCALL`. Redis runs the prelude once, when the
//!   library is loaded, so a call runs only its operation: about 40% less
//!   of Redis's time per call than the same code by `EVALSHA`, which
//!   defines every helper of the prelude again on each call.
//! - Each operation's [`Script`], for `EVALSHA` on a server without functions
//!   (before Redis 7) or whose ACL refuses `FCALL` or `FUNCTION LOAD`.
//!
//! Both are built once per process. The library's name holds a hash of its
//! code, so pods of different versions sharing one Redis each call their
//! own (an old version's library stays until deleted: `FUNCTION DELETE`).
//! [`RedisStore`](super::RedisStore) loads it on `Function not found`, as
//! it loads a script on `NOSCRIPT`.
//!
//! The KEYS and ARGV layout below is the one documented at the top of
//! `lua/lib.lua`; the two change together.

use std::sync::{Arc, LazyLock};

use ::redis::Script;

use super::Keys;
use crate::agent_id::AgentId;
use crate::config::BreakerConfig;

/// The code every operation starts with.
const PRELUDE: &str = concat!(
    include_str!("lua/epoch.lua"),
    include_str!("lua/lib.lua"),
    include_str!("lua/load.lua"),
);

/// Each operation's name (its function's, after the library's) and file.
const OPS: [(&str, &str); 8] = [
    ("acquire", include_str!("lua/acquire.lua")),
    ("record", include_str!("lua/record.lua")),
    ("reset", include_str!("lua/reset.lua")),
    ("force", include_str!("lua/force.lua")),
    ("snapshot", include_str!("lua/snapshot.lua")),
    ("flush", include_str!("lua/flush.lua")),
    ("configure", include_str!("lua/configure.lua")),
    ("census", include_str!("lua/census.lua")),
];

/// One operation: by `FCALL` of its function, or by `EVALSHA` of its script.
#[derive(Debug)]
pub(super) struct Op {
    /// The prelude and the operation's file, for `EVALSHA`.
    pub(super) script: Script,
    /// Its function in [`LIBRARY`], for `FCALL`.
    pub(super) function: String,
}

impl Op {
    fn named(name: &str) -> Self {
        let (_, file) = OPS
            .iter()
            .find(|(op, _)| *op == name)
            .unwrap_or_else(|| panic!("no operation {name} in OPS"));
        Self {
            script: Script::new(&format!("{PRELUDE}{file}")),
            function: LIBRARY.function(name),
        }
    }
}

/// The function library (see the module's documentation).
#[derive(Debug)]
pub(super) struct Library {
    /// `fleet_breaker_` and 16 hex digits of the SHA-1 of the code.
    pub(super) name: String,
    /// The text `FUNCTION LOAD` takes.
    pub(super) code: String,
}

impl Library {
    /// The library: the prelude runs once, at load; each operation's file
    /// becomes the body of a function that first points `KEYS` and `ARGV`
    /// (locals of the library, where a script has globals) at its call's
    /// keys and arguments. Redis runs one call at a time, so no two calls
    /// share them.
    fn build() -> Self {
        let mut body = String::from("local KEYS, ARGV\n");
        body.push_str(PRELUDE);
        // The SHA-1 that names scripts too (redis-rs computes it for a Script).
        let hash = Script::new(&format!(
            "{body}{}",
            OPS.map(|(name, file)| format!("{name}\n{file}")).concat()
        ))
        .get_hash()[..16]
            .to_owned();
        let name = format!("fleet_breaker_{hash}");
        for (op, file) in OPS {
            body.push_str(&format!(
                "redis.register_function('{name}_{op}', function(keys, args)\nKEYS, ARGV = keys, args\n{file}\nend)\n"
            ));
        }
        Self {
            code: format!("#!lua name={name}\n{body}"),
            name,
        }
    }

    fn function(&self, op: &str) -> String {
        format!("{}_{op}", self.name)
    }
}

/// Every operation, as one function library.
pub(super) static LIBRARY: LazyLock<Library> = LazyLock::new(Library::build);

/// `lua/acquire.lua`: [`crate::model::acquire`].
pub(super) static ACQUIRE: LazyLock<Op> = LazyLock::new(|| Op::named("acquire"));
/// `lua/record.lua`: [`crate::model::record`].
pub(super) static RECORD: LazyLock<Op> = LazyLock::new(|| Op::named("record"));
/// `lua/reset.lua`: [`crate::model::reset`].
pub(super) static RESET: LazyLock<Op> = LazyLock::new(|| Op::named("reset"));
/// `lua/force.lua`: [`crate::model::force`].
pub(super) static FORCE: LazyLock<Op> = LazyLock::new(|| Op::named("force"));
/// `lua/snapshot.lua`: [`crate::model::refresh`] alone.
pub(super) static SNAPSHOT: LazyLock<Op> = LazyLock::new(|| Op::named("snapshot"));
/// `lua/flush.lua`: [`crate::model::flush`].
pub(super) static FLUSH: LazyLock<Op> = LazyLock::new(|| Op::named("flush"));
/// `lua/configure.lua`: [`crate::model::configure`].
pub(super) static CONFIGURE: LazyLock<Op> = LazyLock::new(|| Op::named("configure"));
/// `lua/census.lua`: one agent's census field put right from its state.
pub(super) static CENSUS: LazyLock<Op> = LazyLock::new(|| Op::named("census"));

/// Every script, for loading them all at once where functions cannot be.
pub(super) fn all() -> [&'static Script; 7] {
    [
        &ACQUIRE.script,
        &RECORD.script,
        &RESET.script,
        &FORCE.script,
        &SNAPSHOT.script,
        &FLUSH.script,
        &CONFIGURE.script,
    ]
}

/// `ARGV[3..12]` and the policies (the last `ARGV`): the same for every call
/// of one store under one config, so formatted once, not per call (the
/// decimals' formatting cost more than the rest of a call's arguments).
#[derive(Debug)]
pub(super) struct Common {
    config: BreakerConfig,
    transitions_max_len: u64,
    args: [String; 10],
    policies: String,
}

impl Common {
    pub(super) fn new(keys: &Keys, config: &BreakerConfig, transitions_max_len: u64) -> Self {
        Self {
            config: *config,
            transitions_max_len,
            args: [
                keys.events(),
                transitions_max_len.to_string(),
                config.failure_threshold.to_string(),
                config.half_open_max_calls.to_string(),
                config.base_backoff_ms().to_string(),
                // Rust's Display of an f64 is the shortest text that reads
                // back as the same double, so Lua's `tonumber` gets the
                // exact value.
                config.backoff_multiplier.to_string(),
                config.max_backoff_ms().to_string(),
                config.recovery_timeout_ms().to_string(),
                keys.counts(),
                config.idle_ttl_ms().to_string(),
            ],
            policies: policies(config),
        }
    }

    /// Whether these are the arguments of `config` and `transitions_max_len`.
    pub(super) fn fits(&self, config: &BreakerConfig, transitions_max_len: u64) -> bool {
        self.config == *config && self.transitions_max_len == transitions_max_len
    }
}

/// The KEYS and ARGV of one script call.
#[derive(Debug)]
pub(super) struct Call {
    /// `KEYS[1..6]`: state, probes, agents, transitions, census, config;
    /// on a cluster state, probes and config (the agent's slot), see
    /// `lua/lib.lua`.
    pub(super) keys: Vec<String>,
    /// `ARGV[1..2]` (the agent, the clock override), then the operation's
    /// own arguments.
    args: Vec<String>,
    /// `ARGV[3..12]` and the policies; `None` for `census.lua`, which
    /// takes the agent alone.
    common: Option<Arc<Common>>,
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
        common: Arc<Common>,
        now_override_ms: Option<u64>,
        cluster: bool,
    ) -> Self {
        let args = vec![
            agent.as_str().to_owned(),
            now_override_ms.map_or_else(String::new, |ms| ms.to_string()),
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
            common: Some(common),
        }
    }

    /// A call of `census.lua` on `agent` (see its header for `keys`).
    pub(super) fn census(keys: Vec<String>, agent: &AgentId) -> Self {
        Self {
            keys,
            args: vec![agent.as_str().to_owned()],
            common: None,
        }
    }

    /// Appends an operation's own argument.
    pub(super) fn arg(mut self, value: impl Into<String>) -> Self {
        self.args.push(value.into());
        self
    }

    /// `ARGV`, in order.
    pub(super) fn argv(&self) -> impl Iterator<Item = &str> {
        let (head, own) = self.args.split_at(self.args.len().min(2));
        let common = self.common.as_deref();
        head.iter()
            .chain(common.into_iter().flat_map(|common| &common.args))
            .chain(own)
            .map(String::as_str)
            .chain(common.map(|common| common.policies.as_str()))
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
    fn every_operation_builds_with_a_hash_and_a_function_of_its_own() {
        let ops = [
            &ACQUIRE, &RECORD, &RESET, &FORCE, &SNAPSHOT, &FLUSH, &CONFIGURE, &CENSUS,
        ];
        let hashes: std::collections::HashSet<&str> =
            ops.iter().map(|op| op.script.get_hash()).collect();
        assert_eq!(hashes.len(), ops.len());
        let functions: std::collections::HashSet<&str> =
            ops.iter().map(|op| op.function.as_str()).collect();
        assert_eq!(functions.len(), ops.len());
        for op in ops {
            assert!(op.function.starts_with(&LIBRARY.name), "{}", op.function);
            assert!(
                LIBRARY
                    .code
                    .contains(&format!("redis.register_function('{}',", op.function)),
                "{}",
                op.function
            );
        }
        assert!(
            LIBRARY
                .code
                .starts_with(&format!("#!lua name={}\n", LIBRARY.name))
        );
        assert_eq!(LIBRARY.name.len(), "fleet_breaker_".len() + 16);
    }

    #[test]
    fn the_multiplier_is_passed_as_its_shortest_exact_text() {
        let config = BreakerConfig {
            backoff_multiplier: 1.1,
            ..BreakerConfig::default()
        };
        let agent = AgentId::new("agent-1").expect("valid id");
        let keys = Keys::default();
        let common = Arc::new(Common::new(&keys, &config, 10));
        let call = Call::new(&keys, &agent, common, None, false).arg("own");
        let argv: Vec<&str> = call.argv().collect();
        assert_eq!(argv.len(), 14, "{argv:?}");
        assert_eq!(argv[0], "agent-1");
        assert_eq!(argv[7], "1.1");
        assert_eq!(argv[1], "", "no override: Redis TIME");
        assert_eq!(call.keys[0], "fleet-breaker:{agent-1}:state");
        assert_eq!(call.keys.len(), 6);
        assert_eq!(call.keys[5], "fleet-breaker:{agent-1}:config");
        assert_eq!(argv[11], "604800000", "idle_ttl_ms: 7 days");
        assert_eq!(argv[12], "own", "the operation's own, after the twelve");
        assert_eq!(argv[13], "0 0 0 10000 20 1 0", "the policies, last");
        let census = Call::census(Vec::new(), &agent);
        assert_eq!(census.argv().collect::<Vec<_>>(), ["agent-1"]);
    }

    #[test]
    fn a_cluster_call_names_only_the_keys_of_the_agents_slot() {
        let agent = AgentId::new("agent-1").expect("valid id");
        let keys = Keys::default();
        let common = Arc::new(Common::new(&keys, &BreakerConfig::default(), 10));
        let call = Call::new(&keys, &agent, common, None, true);
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
