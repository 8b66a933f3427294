//! What the fault tests share: the bounds, a fleet of pods (each a
//! `FailoverRouter` over its own breaker and Redis pool, straight to Redis
//! or through its own `FaultProxy`), fake agents, and the waits on degraded
//! mode and fleet agreement. The load and its timings are in `load.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fleet_breaker::router::FailoverRouter;
use fleet_breaker::{AgentId, BreakerConfig, CircuitBreaker, CircuitState, RedisStore};
use tokio::sync::{Mutex, MutexGuard};

use crate::support::proxy::FaultProxy;
use crate::support::{TestRedis, poll_within, wait_until};

/// The store's bound on every Redis operation: the default, set explicitly.
pub(crate) const TIMEOUT: Duration = Duration::from_millis(100);

/// Consecutive store-unavailable errors after which a pod stops calling
/// Redis (the default, set explicitly).
pub(crate) const DEGRADE_AFTER: u32 = 3;

/// How often a degraded pod pings Redis (the default, set explicitly).
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// The worst a single `route_task` may take while Redis is dead, silent or
/// slow: `3 x TIMEOUT + 50 ms`. Before its pod is degraded, one route makes
/// at most three store calls one after the other, each bounded by
/// [`TIMEOUT`]: with agent-1 down and agent-2 serving, either (acquire
/// agent-1 rejected, acquire agent-2, record agent-2's success) or (acquire
/// agent-1 granted, its failure recorded with the failure journal written
/// alongside, acquire agent-2, whose success is then recorded locally). The
/// 50 ms is scheduling margin on a small, busy test machine.
pub(crate) const ROUTE_BOUND: Duration = Duration::from_millis(3 * 100 + 50);

/// The worst a route may take once its pod is degraded: no store call at all.
pub(crate) const DEGRADED_ROUTE_BOUND: Duration = Duration::from_millis(10);

/// From Redis answering again to every pod out of degraded mode.
pub(crate) const RECOVERY_BOUND: Duration = Duration::from_secs(2);

pub(crate) const AGENT_1: &str = "agent-1";
pub(crate) const AGENT_2: &str = "agent-2";
pub(crate) const AGENTS: [&str; 2] = [AGENT_1, AGENT_2];

/// Fleet tests run one at a time: they time routes, and two fleets of busy
/// pods on one small machine would time each other.
static SERIAL: Mutex<()> = Mutex::const_new(());

pub(crate) async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// The proxy forwards to 127.0.0.1: it needs a Redis on loopback.
pub(crate) fn on_loopback(redis: &TestRedis) -> bool {
    let local = redis.url().starts_with("redis://127.0.0.1:");
    if !local {
        eprintln!("skipped: the fault proxy forwards to 127.0.0.1, and REDIS_URL is elsewhere");
    }
    local
}

pub(crate) fn id(agent: &str) -> AgentId {
    AgentId::new(agent).expect("valid agent id")
}

/// The fake agents as one pod sees them: agent-2 always serves, agent-1
/// serves until told to fail. Calls are counted per agent.
#[derive(Debug, Default)]
pub(crate) struct World {
    agent_1_down: AtomicBool,
    calls: [AtomicU64; 2],
}

impl World {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub(crate) fn set_agent_1_down(&self, down: bool) {
        self.agent_1_down.store(down, Ordering::SeqCst);
    }

    /// Calls made to `agent` so far.
    pub(crate) fn calls(&self, agent: &str) -> u64 {
        self.calls[usize::from(agent == AGENT_2)].load(Ordering::SeqCst)
    }

    fn call(&self, agent: &AgentId, task: u64) -> Result<u64, String> {
        let agent_1 = agent.as_str() == AGENT_1;
        self.calls[usize::from(!agent_1)].fetch_add(1, Ordering::SeqCst);
        if agent_1 && self.agent_1_down.load(Ordering::SeqCst) {
            Err("connection refused".to_owned())
        } else {
            Ok(task)
        }
    }
}

/// How a pod reaches Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// Straight to the server.
    Direct,
    /// Through a `FaultProxy` of its own.
    Proxied,
}

/// One router pod: its own breaker, Redis pool and watcher.
#[derive(Debug)]
pub(crate) struct Pod {
    pub(crate) name: String,
    pub(crate) router: FailoverRouter,
    pub(crate) proxy: Option<FaultProxy>,
    pub(crate) world: Arc<World>,
}

impl Pod {
    pub(crate) async fn start(
        redis: &TestRedis,
        prefix: &str,
        name: &str,
        path: Path,
        world: Arc<World>,
    ) -> Pod {
        let proxy = match path {
            Path::Direct => None,
            Path::Proxied => Some(FaultProxy::start(redis.port()).await),
        };
        let url = proxy.as_ref().map_or_else(|| redis.url(), FaultProxy::url);
        let store = RedisStore::builder(url)
            .prefix(prefix)
            .timeout(TIMEOUT)
            .pool_size(4)
            .build()
            .await
            .expect("connect to the test Redis");
        let config = BreakerConfig::builder()
            .failure_threshold(3)
            // The first opening waits 15 s: an open circuit stays open for the test.
            .base_backoff(Duration::from_secs(10))
            .build()
            .expect("valid config");
        let breaker = CircuitBreaker::builder()
            .store(store)
            .config(config)
            .instance_id(name)
            .degrade_after(DEGRADE_AFTER)
            .store_probe_interval(PROBE_INTERVAL)
            .build()
            .expect("valid breaker");
        let router = FailoverRouter::builder(breaker)
            .build()
            .expect("valid router");
        Pod {
            name: name.to_owned(),
            router,
            proxy,
            world,
        }
    }

    pub(crate) fn breaker(&self) -> &CircuitBreaker {
        self.router.breaker()
    }

    pub(crate) fn proxy(&self) -> &FaultProxy {
        self.proxy
            .as_ref()
            .expect("this pod reaches Redis through a proxy")
    }

    /// The pod's cached view of `agent`: state and generation.
    pub(crate) fn cached(&self, agent: &str) -> Option<(CircuitState, u64)> {
        let cache = self.breaker().cache().expect("a Redis store has a cache");
        let agent = id(agent);
        cache.state(&agent).zip(cache.generation(&agent))
    }

    /// Routes one task to agent-1 then agent-2: the agent that served it
    /// and what happened to the agents passed over, or the route's error.
    pub(crate) async fn route(&self, task: u64) -> Result<(AgentId, String), String> {
        let world = Arc::clone(&self.world);
        let task_fn = move |agent: AgentId, n: u64| std::future::ready(world.call(&agent, n));
        let task_id = format!("{}-{task}", self.name);
        self.router
            .route_task(&task_id, AGENTS, task_fn, task)
            .await
            .map(|routed| {
                let passed: Vec<String> = routed.history.iter().map(|r| r.to_string()).collect();
                (routed.agent, passed.join("; "))
            })
            .map_err(|e| e.to_string())
    }
}

/// `n` pods named `pod-0`... sharing `world`.
pub(crate) async fn fleet(
    redis: &TestRedis,
    prefix: &str,
    n: usize,
    path: Path,
    world: &Arc<World>,
) -> Vec<Arc<Pod>> {
    let mut pods = Vec::with_capacity(n);
    for i in 0..n {
        let pod = Pod::start(redis, prefix, &format!("pod-{i}"), path, Arc::clone(world)).await;
        pods.push(Arc::new(pod));
    }
    pods
}

/// Waits until every pod is degraded; how long that took.
pub(crate) async fn all_degraded(pods: &[Arc<Pod>], within: Duration) -> Duration {
    let started = Instant::now();
    wait_until("every pod is degraded", within, || async move {
        pods.iter().all(|p| p.breaker().is_degraded())
    })
    .await;
    started.elapsed()
}

/// Waits (up to 2 s) until every pod's cache holds agent-1 open.
pub(crate) async fn all_see_agent_1_open(pods: &[Arc<Pod>]) {
    wait_until(
        "every pod has seen agent-1 open",
        Duration::from_secs(2),
        || async move {
            pods.iter().all(|p| {
                p.cached(AGENT_1)
                    .is_some_and(|(s, _)| s == CircuitState::Open)
            })
        },
    )
    .await;
}

/// Waits (within [`RECOVERY_BOUND`]) until no pod is degraded; how long that
/// took since `since`.
pub(crate) async fn all_recovered(pods: &[Arc<Pod>], since: Instant) -> Duration {
    wait_until(
        "every pod leaves degraded mode",
        RECOVERY_BOUND,
        || async move { pods.iter().all(|p| !p.breaker().is_degraded()) },
    )
    .await;
    since.elapsed()
}

/// What the fleet agrees on for one agent: Redis' state and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreed {
    pub(crate) state: CircuitState,
    pub(crate) generation: u64,
}

/// Every pod's `snapshot()` of `agent` gives the same state and generation,
/// and every pod's cache holds that same state and generation.
async fn agreement(pods: &[Arc<Pod>], agent: &str) -> Result<Agreed, String> {
    let mut seen = Vec::new();
    for pod in pods {
        let snapshot = pod
            .breaker()
            .snapshot(&id(agent))
            .await
            .map_err(|e| format!("{}: snapshot of {agent}: {e}", pod.name))?;
        let agreed = Agreed {
            state: snapshot.state,
            generation: snapshot.generation,
        };
        let cached = pod.cached(agent);
        if cached != Some((agreed.state, agreed.generation)) {
            return Err(format!(
                "{}: cache holds {cached:?} for {agent}, Redis {agreed:?}",
                pod.name
            ));
        }
        seen.push(agreed);
    }
    if seen.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!(
            "pods read different snapshots of {agent}: {seen:?}"
        ));
    }
    seen.first().copied().ok_or_else(|| "no pods".to_owned())
}

/// Waits until every pod agrees on each agent (see [`agreement`]); returns
/// what they agree on, in [`AGENTS`] order.
///
/// # Panics
///
/// After `within`, with the last disagreement.
pub(crate) async fn agreed(pods: &[Arc<Pod>], within: Duration) -> Vec<Agreed> {
    let last = std::sync::Mutex::new(String::new());
    let last = &last;
    let views = poll_within(within, Duration::from_millis(10), || async move {
        let mut views = Vec::new();
        for agent in AGENTS {
            match agreement(pods, agent).await {
                Ok(view) => views.push(view),
                Err(why) => {
                    *last.lock().unwrap() = why;
                    return None;
                }
            }
        }
        Some(views)
    })
    .await;
    views.unwrap_or_else(|| {
        panic!(
            "the pods do not agree within {within:?}: {}",
            last.lock().unwrap()
        )
    })
}
