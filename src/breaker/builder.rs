//! [`CircuitBreakerBuilder`]: store, config, policy and cache settings.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::background::{self, Flusher, Follower};
use super::expiry::ForceTimers;
use super::fallback::Fallback;
use super::store_health::{DEFAULT_DEGRADE_AFTER, DEFAULT_STORE_PROBE_INTERVAL, StoreHealth};
use super::{CircuitBreaker, Inner, StorePolicy};
use crate::agent_id::AgentId;
use crate::cache::Cache;
use crate::clock::{Clock, CoarseClock, HotClock, SystemClock, TickingClock};
use crate::config::{BreakerConfig, ConfigError};
use crate::store::{BreakerStore, FeedOptions, FeedTarget, MemoryStore};

/// Default of [`CircuitBreakerBuilder::max_staleness`].
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(1);

/// Default of [`CircuitBreakerBuilder::flush_interval`].
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Default of [`CircuitBreakerBuilder::success_flush_interval`].
pub const DEFAULT_SUCCESS_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// Default of [`CircuitBreakerBuilder::window_flush_interval`].
pub const DEFAULT_WINDOW_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Builder of a [`CircuitBreaker`]; see [`CircuitBreaker::builder`].
#[derive(Debug)]
#[must_use]
pub struct CircuitBreakerBuilder {
    store: Option<Arc<dyn BreakerStore>>,
    config: BreakerConfig,
    policy: StorePolicy,
    agent_policies: HashMap<AgentId, StorePolicy>,
    instance_id: Option<String>,
    local_cache: bool,
    max_staleness: Duration,
    flush_interval: Duration,
    success_flush_interval: Duration,
    window_flush_interval: Duration,
    degrade_after: u32,
    store_probe_interval: Duration,
    config_check: bool,
}

impl CircuitBreakerBuilder {
    pub(super) fn new() -> Self {
        Self {
            store: None,
            config: BreakerConfig::default(),
            policy: StorePolicy::default(),
            agent_policies: HashMap::new(),
            instance_id: None,
            local_cache: true,
            max_staleness: DEFAULT_MAX_STALENESS,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            success_flush_interval: DEFAULT_SUCCESS_FLUSH_INTERVAL,
            window_flush_interval: DEFAULT_WINDOW_FLUSH_INTERVAL,
            degrade_after: DEFAULT_DEGRADE_AFTER,
            store_probe_interval: DEFAULT_STORE_PROBE_INTERVAL,
            config_check: true,
        }
    }

    /// Whether this breaker publishes its config's fingerprint in a shared
    /// store and compares it with the other pods' (default `true`; see
    /// [`CircuitBreaker::config_agreement`]). A short-lived tool that only
    /// reads or administers the fleet turns it off, so that its own config
    /// is not reported as a pod's.
    pub fn config_check(mut self, enabled: bool) -> Self {
        self.config_check = enabled;
        self
    }

    /// The store (default: a new [`MemoryStore`]).
    pub fn store(mut self, store: impl BreakerStore + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// A store already shared behind an `Arc`.
    pub fn shared_store(mut self, store: Arc<dyn BreakerStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The breaker's tunables (default: [`BreakerConfig::default`]).
    pub fn config(mut self, config: BreakerConfig) -> Self {
        self.config = config;
        self
    }

    /// What to do when the store fails (default: `FailLocal`).
    pub fn policy(mut self, policy: StorePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// What to do for `agent` when the store fails, overriding
    /// [`policy`](Self::policy) for it alone: say `FailClosed` for a payment
    /// agent that must never be called unguarded, while the rest fail local.
    pub fn agent_policy(mut self, agent: AgentId, policy: StorePolicy) -> Self {
        self.agent_policies.insert(agent, policy);
        self
    }

    /// The id of this pod in logs and failure records (default: a random UUID).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// Whether to decide closed and open circuits from a local cache, with
    /// no round trip (default `true`): on Redis a cache fed by pub/sub;
    /// on the embedded store one it feeds as it applies each operation,
    /// which decides a closed circuit with no lock. Without it, every
    /// acquire and record is a store operation (a script call on Redis).
    pub fn local_cache(mut self, enabled: bool) -> Self {
        self.local_cache = enabled;
        self
    }

    /// How long a cache entry, and a silent subscription, is trusted
    /// (default 1 s; at least 10 ms).
    pub fn max_staleness(mut self, max_staleness: Duration) -> Self {
        self.max_staleness = max_staleness;
        self
    }

    /// How often local rejections (counted on a circuit cached open) reach
    /// the store (default 1 s; at least 10 ms). `total_rejections` may lag
    /// by this much.
    pub fn flush_interval(mut self, flush_interval: Duration) -> Self {
        self.flush_interval = flush_interval;
        self
    }

    /// How often successes counted locally on a clean closed circuit reach
    /// the store (default 10 s; at least 10 ms): they change no decision,
    /// only `success_count` and `last_success_time`, which may lag by this
    /// much. Each agent with such counts costs one script call per
    /// interval and pod, whatever the call rate.
    /// [`CircuitBreaker::flush`] sends them at once.
    pub fn success_flush_interval(mut self, every: Duration) -> Self {
        self.success_flush_interval = every;
        self
    }

    /// How often successes counted locally reach the store for an agent
    /// whose window holds failures or slow calls (default 1 s, a bucket of
    /// the default window; at least 10 ms): a rate decision divides by
    /// them, so it may see this much of this pod's successes late (and a
    /// rate look that much higher). Failures and slow calls are never
    /// held: each reaches the store at once. A clean agent keeps
    /// [`success_flush_interval`](Self::success_flush_interval).
    pub fn window_flush_interval(mut self, every: Duration) -> Self {
        self.window_flush_interval = every;
        self
    }

    /// How many store-unavailable errors in a row (timeouts, lost
    /// connections, on acquires, records and flushes) put the pod in
    /// degraded mode, where decisions follow the policy without trying the
    /// store (default 3; at least 1). See [`CircuitBreaker`]'s behaviour list.
    pub fn degrade_after(mut self, consecutive_errors: u32) -> Self {
        self.degrade_after = consecutive_errors;
        self
    }

    /// How often a degraded pod pings its store to learn that it is back
    /// (default 200 ms; at least 10 ms). Leaving degraded mode takes up to
    /// this long after the store returns, plus one ping and the resync.
    pub fn store_probe_interval(mut self, every: Duration) -> Self {
        self.store_probe_interval = every;
        self
    }

    /// Validates the config and builds the breaker.
    ///
    /// On a store shared through Redis, with the local cache on, this spawns
    /// the watcher and the flusher on the current tokio runtime; outside a
    /// runtime the breaker works without a cache (every decision is a round
    /// trip) and says so in a warning.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the config or a cache setting is invalid.
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        self.config.validate()?;
        if self.degrade_after == 0 {
            return Err(ConfigError {
                field: "degrade_after",
                value: "0".to_owned(),
                expected: "it must be at least 1 (store errors in a row)",
            });
        }
        for (field, value) in [
            ("max_staleness", self.max_staleness),
            ("flush_interval", self.flush_interval),
            ("success_flush_interval", self.success_flush_interval),
            ("window_flush_interval", self.window_flush_interval),
            ("store_probe_interval", self.store_probe_interval),
        ] {
            if value < Duration::from_millis(10) {
                return Err(ConfigError {
                    field,
                    value: format!("{value:?}"),
                    expected: "it must be at least 10 ms",
                });
            }
        }
        Ok(self.build_valid())
    }

    /// Builds from settings known to be valid.
    pub(super) fn build_valid(self) -> CircuitBreaker {
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let instance_id = self
            .instance_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let permit_prefix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let instance_id_for_reports = instance_id.clone();
        let feed = store.feed();
        let clock: Arc<dyn Clock> = feed.clock().unwrap_or_else(|| Arc::new(SystemClock));
        let runtime = tokio::runtime::Handle::try_current().ok();
        let wants_cache = self.local_cache && feed.is_remote();
        if wants_cache && runtime.is_none() {
            tracing::warn!(
                "CircuitBreaker built outside a tokio runtime: no local cache, every decision is a round trip"
            );
        }
        let cached = runtime.clone().filter(|_| wants_cache);
        let remote = feed.is_remote();
        let (max_staleness, flush_interval) = (self.max_staleness, self.flush_interval);
        let success_interval = self.success_flush_interval;
        let window_interval = self.window_flush_interval;
        // A shared store forgets idle agents (the embedded one does not
        // outlive its process).
        let checks = runtime.clone().filter(|_| remote && self.config_check);
        let sweeps = runtime.filter(|_| remote).zip(self.config.idle_ttl);
        let agreement = super::agreement::Agreement::new(&self.config, &instance_id);
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let agreement_check = checks.map(|runtime| {
                let _guard = runtime.enter();
                super::agreement::Checker::spawn(weak.clone())
            });
            let sweeper = sweeps.map(|(runtime, idle_ttl)| {
                let _guard = runtime.enter();
                super::sweep::Sweeper::spawn(weak.clone(), idle_ttl)
            });
            let (cache, feed, flusher, follower, force_timers) = match cached {
                Some(runtime) => {
                    let _guard = runtime.enter();
                    let clock = feed.clock().map_or_else(cheap_clock, HotClock::from);
                    let cache = Arc::new(Cache::reading(max_staleness, clock));
                    let target = FeedTarget {
                        sink: cache.clone(),
                        resync: background::resync(weak.clone()),
                        options: FeedOptions {
                            ping_interval: max_staleness / 2,
                            ..FeedOptions::default()
                        },
                    };
                    let feed = feed.start(Some(target));
                    let flusher = Flusher::spawn(
                        weak.clone(),
                        max_staleness,
                        flush_interval,
                        success_interval,
                        window_interval,
                    );
                    let follower = Follower::spawn(weak.clone(), feed.subscribe());
                    let force_timers = ForceTimers::spawn(weak.clone());
                    (
                        Some(cache),
                        Some(feed),
                        Some(flusher),
                        Some(follower),
                        Some(force_timers),
                    )
                }
                // A store of this process hears every transition before an
                // operation returns and reads the counts before each one: a
                // cache in front of it needs no background task (nothing
                // ages, nothing to flush) and decides closed circuits with
                // no lock. Its feed also serves `subscribe()`.
                None if !remote && self.local_cache => {
                    let mut cache = Cache::authoritative(Arc::clone(&clock));
                    if feed.clock().is_none() {
                        // The store reads the system clock: time the local
                        // successes with a cheaper one.
                        cache = cache.with_success_clock(cheap_clock());
                    }
                    let cache = Arc::new(cache);
                    let target = FeedTarget {
                        sink: cache.clone(),
                        resync: background::resync(weak.clone()),
                        options: FeedOptions::default(),
                    };
                    (
                        Some(cache),
                        Some(feed.start(Some(target))),
                        None,
                        None,
                        None,
                    )
                }
                None if !remote => (None, Some(feed.start(None)), None, None, None),
                None => (None, None, None, None, None),
            };
            Inner {
                store,
                config: self.config,
                policy: self.policy,
                agent_policies: self.agent_policies,
                instance_id,
                fallback: Fallback::default(),
                health: Arc::new(StoreHealth::new(
                    self.degrade_after,
                    self.store_probe_interval,
                    Arc::clone(&clock),
                )),
                clock,
                prober: Mutex::new(None),
                pending: super::pending::PendingProbes::default(),
                cache,
                remote,
                feed,
                _flusher: flusher,
                _follower: follower,
                _sweeper: sweeper,
                agreement,
                _agreement_check: agreement_check,
                force_timers,
                permit_prefix,
                permit_counter: AtomicU64::new(0),
                reporter: crate::model::reporter_id(&instance_id_for_reports),
                local: super::local::LocalOpens::default(),
            }
        });
        CircuitBreaker { inner }
    }
}

/// The clock of a cache in front of a store on the system clock: the
/// ticking one (a load a read, in place: measured 15.1 -> 13.0 ns for a
/// handle's `try_acquire` + `try_success` against a call through a
/// `dyn Clock`), or the coarse one where no thread can be started for it
/// (a few ns a read).
fn cheap_clock() -> HotClock {
    match TickingClock::new() {
        Some(clock) => HotClock::Ticking(clock),
        None => HotClock::Other(Arc::new(CoarseClock::new())),
    }
}
