//! A fleet in one process: `--pods N` breakers, each with its own Redis pool
//! and watcher, route calls to two simulated agents. `agent-a` dies, its
//! circuit opens, it recovers and the circuit closes again; `agent-b` stays
//! healthy. The same scenario then runs again with per-pod local breakers
//! (one embedded store per pod, nothing shared), and the two are compared.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release --example fleet
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release --example fleet -- --pods 32 --calls-per-sec 4000
//! REDIS_CLUSTER_URLS=redis://127.0.0.1:7000,redis://127.0.0.1:7001 cargo run --release --example fleet
//! ```
//!
//! On a Redis Cluster (`REDIS_CLUSTER_URLS`, or a `redis+cluster://` URL
//! in `REDIS_URL`) the commands are counted on every master, summed.
//!
//! Phases: healthy steady state (Redis commands counted from `INFO
//! commandstats`), agent-a dead until every pod has seen its circuit open,
//! agent-a recovered until every pod has seen it closed. A human summary,
//! then one line of JSON. Keys live under a prefix unique to the run and are
//! deleted at the end. Use a Redis nobody else is using: the command counts
//! are server-wide.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fleet_breaker::{
    AgentId, BreakerConfig, CircuitBreaker, CircuitState, MemoryStore, RedisStore, RedisTarget,
};
use redis::aio::MultiplexedConnection;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

#[path = "support/commandstats.rs"]
mod commandstats;
#[path = "support/flags.rs"]
mod flags;
#[path = "support/policies.rs"]
mod policies;
use commandstats::{RUN_INSIDE_SCRIPTS, client_commands_on, commandstats_all};

const USAGE: &str = "\
fleet: a fleet of breakers sharing one Redis, against per-pod local breakers

USAGE:
    REDIS_URL=redis://127.0.0.1:6379 cargo run --release --example fleet -- [OPTIONS]

OPTIONS:
    --pods N            breaker instances (pods), each with its own pool and watcher [default: 16]
    --calls-per-sec N   calls each pod makes per second, split over agent-a and agent-b [default: 2000]
    --steady-secs N     length of the healthy window whose Redis commands are counted [default: 3]
    --scenario NAME     dies (agent-a dies and recovers) [default], rate (agent-c fails 30% of
                        its calls: the fleet's failure rate against per-pod breakers), or
                        sick-pod (one pod alone sees agent-a fail: min_reporting_pods 2 against 1)
    -h, --help          this text";

const FAILURE_THRESHOLD: u32 = 5;
const HALF_OPEN_MAX_CALLS: u32 = 3;
/// The first opening waits base x 1.5 = 300 ms.
const BASE_BACKOFF: Duration = Duration::from_millis(200);
/// How long agent-a stays dead once every pod has seen its circuit open:
/// well inside the 300 ms backoff, so the first half-open probes find it
/// recovered (a probe made while it is still dead would count as wasted).
const HOLD_OPEN: Duration = Duration::from_millis(100);
/// The whole run, both scenarios, is cut off after this.
const RUN_LIMIT: Duration = Duration::from_secs(55);
#[derive(Debug, Clone, Copy)]
struct Options {
    pods: usize,
    calls_per_sec: u64,
    steady: Duration,
    scenario: Scenario,
}

/// Which scenario `--scenario` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Dies,
    Rate,
    SickPod,
}

fn parse_args() -> Result<Option<Options>, String> {
    let mut options = Options {
        pods: 16,
        calls_per_sec: 2000,
        steady: Duration::from_secs(3),
        scenario: Scenario::Dies,
    };
    let go_on = flags::parse(|flag| {
        match flag.name.as_str() {
            "--pods" => options.pods = usize::try_from(flag.number(1, 256)?).unwrap_or(16),
            "--calls-per-sec" => options.calls_per_sec = flag.number(2, 100_000)?,
            "--steady-secs" => options.steady = Duration::from_secs(flag.number(1, 20)?),
            "--scenario" => {
                options.scenario = match flag.value.as_str() {
                    "dies" => Scenario::Dies,
                    "rate" => Scenario::Rate,
                    "sick-pod" => Scenario::SickPod,
                    other => {
                        return Err(format!(
                            "--scenario takes dies, rate or sick-pod, not {other:?}"
                        ));
                    }
                }
            }
            _ => return Err(flag.unknown()),
        }
        Ok(())
    })?;
    if !go_on {
        return Ok(None);
    }
    Ok(Some(options))
}

/// The simulated world the pods call into, and what they observe of it.
#[derive(Debug)]
struct World {
    agent_a: AgentId,
    agent_b: AgentId,
    a_alive: AtomicBool,
    stop: AtomicBool,
    /// Fleet-wide counters, indexed by `CALLS`, `A_CALLS`, ...
    counts: [AtomicU64; 6],
    /// Per pod: agent-a's state as the pod last heard it (a transition).
    heard: Vec<AtomicU8>,
    /// Ms from each transition's `at_ms` to each pod hearing it.
    delays: Mutex<Vec<f64>>,
}

/// Calls made (permit granted), to agent-a, refused for agent-a, refused
/// for agent-b, made to agent-a while dead, probes; then cache hits, misses.
const CALLS: usize = 0;
const A_CALLS: usize = 1;
const A_REJECTED: usize = 2;
const B_REJECTED: usize = 3;
const WASTED: usize = 4;
const PROBES: usize = 5;
const HITS: usize = 6;
const MISSES: usize = 7;

/// The counters and the pods' cache stats at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct Tally([u64; 8]);

impl Tally {
    fn minus(self, earlier: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] - earlier.0[i]))
    }

    fn hit_ratio(self) -> Option<f64> {
        let total = self.0[HITS] + self.0[MISSES];
        (total > 0).then(|| self.0[HITS] as f64 / total as f64)
    }

    fn hit_rate(self) -> String {
        self.hit_ratio().map_or("n/a (no cache)".to_owned(), |r| {
            format!("hit rate {:.4}% ({} misses)", r * 100.0, self.0[MISSES])
        })
    }
}

fn state_code(state: CircuitState) -> u8 {
    match state {
        CircuitState::Closed => 0,
        CircuitState::Open => 1,
        CircuitState::HalfOpen => 2,
        CircuitState::ForcedOpen => 3,
        CircuitState::ForcedClosed => 4,
    }
}

fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

impl World {
    fn new(pods: usize) -> Result<Self, AnyError> {
        let closed = state_code(CircuitState::Closed);
        Ok(Self {
            agent_a: AgentId::new("agent-a")?,
            agent_b: AgentId::new("agent-b")?,
            a_alive: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            counts: Default::default(),
            heard: (0..pods).map(|_| AtomicU8::new(closed)).collect(),
            delays: Mutex::new(Vec::new()),
        })
    }

    fn count(&self, which: usize) {
        self.counts[which].fetch_add(1, Ordering::Relaxed);
    }

    fn tally(&self, pods: &[CircuitBreaker]) -> Tally {
        let mut tally = Tally(std::array::from_fn(|i| {
            self.counts.get(i).map_or(0, |c| c.load(Ordering::Relaxed))
        }));
        for stats in pods.iter().filter_map(CircuitBreaker::cache_stats) {
            tally.0[HITS] += stats.hits;
            tally.0[MISSES] += stats.misses;
        }
        tally
    }

    fn all_heard(&self, state: CircuitState) -> bool {
        let code = state_code(state);
        self.heard.iter().all(|s| s.load(Ordering::Acquire) == code)
    }

    /// One call through the breaker: agent-a fails while it is dead.
    async fn call(&self, breaker: &CircuitBreaker, to_a: bool) {
        let agent = if to_a { &self.agent_a } else { &self.agent_b };
        let Ok(permit) = breaker.acquire(agent).await else {
            return self.count(if to_a { A_REJECTED } else { B_REJECTED });
        };
        self.count(CALLS);
        if !to_a {
            return permit.success().await;
        }
        self.count(A_CALLS);
        if permit.is_probe() {
            self.count(PROBES);
        }
        if self.a_alive.load(Ordering::Acquire) {
            permit.success().await;
        } else {
            self.count(WASTED);
            permit.failure("agent-a is dead").await;
        }
    }
}

/// A pod: calls at `rate` per second, alternating agents, one at a time
/// (so at most one call in flight per pod), until told to stop.
async fn pod(index: usize, breaker: CircuitBreaker, world: Arc<World>, options: Options) {
    let tick = Duration::from_millis(5);
    let offset = tick.mul_f64(index as f64 / options.pods as f64);
    tokio::time::sleep(offset).await;
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (start, rate) = (Instant::now(), options.calls_per_sec as f64);
    let max_calls = options.calls_per_sec * RUN_LIMIT.as_secs();
    let mut made = 0u64;
    while made < max_calls && !world.stop.load(Ordering::Acquire) {
        ticks.tick().await;
        // Catch up with the schedule, but never by more than 20 ms of calls.
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        let burst = due.saturating_sub(made).min(options.calls_per_sec / 50 + 1);
        for _ in 0..burst {
            world.call(&breaker, made.is_multiple_of(2)).await;
            made += 1;
        }
    }
}

/// Follows the pod's `subscribe()` stream: the state it heard, and how long
/// each transition took to reach it.
fn listen(index: usize, breaker: &CircuitBreaker, world: Arc<World>) -> JoinHandle<()> {
    let mut stream = Box::pin(breaker.subscribe());
    tokio::spawn(async move {
        while let Some(transition) = stream.next().await {
            let delay = wall_ms() - transition.at_ms as f64;
            if transition.agent_id == world.agent_a {
                world.heard[index].store(state_code(transition.to), Ordering::Release);
            }
            let mut delays = world.delays.lock().unwrap_or_else(PoisonError::into_inner);
            delays.push(delay);
        }
    })
}

async fn wait_for(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<Duration, AnyError> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return Err(format!("gave up after {limit:?} waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(start.elapsed())
}

#[derive(Debug, Default)]
struct Report {
    steady: Tally,
    steady_secs: f64,
    commands: BTreeMap<String, u64>,
    dead: Tally,
    recovering: Tally,
    whole: Tally,
    open_after: Duration,
    closed_after: Duration,
}

/// The scenario, on pods already built; `redis` counts the commands of the
/// healthy window.
async fn scenario(
    label: &str,
    pods: &[CircuitBreaker],
    world: &Arc<World>,
    options: Options,
    mut redis: Option<&mut [MultiplexedConnection]>,
) -> Result<Report, AnyError> {
    let listeners: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, b)| listen(i, b, Arc::clone(world)))
        .collect();
    let tasks: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, b)| tokio::spawn(pod(i, b.clone(), Arc::clone(world), options)))
        .collect();
    let mut report = Report::default();
    let result = async {
        // Warm up: every cache entry filled and confirmed at least once.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = world.tally(pods);
        let stats_before = match redis.as_deref_mut() {
            Some(nodes) => commandstats_all(nodes).await?,
            None => BTreeMap::new(),
        };
        let start = Instant::now();
        tokio::time::sleep(options.steady).await;
        if let Some(nodes) = redis.as_deref_mut() {
            let servers = nodes.len() as u64;
            report.commands =
                client_commands_on(&stats_before, &commandstats_all(nodes).await?, servers);
        }
        report.steady_secs = start.elapsed().as_secs_f64();
        let dying = world.tally(pods);
        report.steady = dying.minus(before);

        println!("[{label}] agent-a dies");
        world.a_alive.store(false, Ordering::Release);
        let limit = Duration::from_secs(5);
        report.open_after = wait_for("every pod to hear agent-a open", limit, || {
            world.all_heard(CircuitState::Open)
        })
        .await?;
        tokio::time::sleep(HOLD_OPEN).await;
        let recovering = world.tally(pods);
        report.dead = recovering.minus(dying);

        println!("[{label}] agent-a recovers");
        world.a_alive.store(true, Ordering::Release);
        let limit = Duration::from_secs(10);
        report.closed_after = wait_for("every pod to hear agent-a closed", limit, || {
            world.all_heard(CircuitState::Closed)
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let end = world.tally(pods);
        report.recovering = end.minus(recovering);
        report.whole = end;
        Ok::<_, AnyError>(())
    }
    .await;
    world.stop.store(true, Ordering::Release);
    for task in tasks {
        let _ = task.await;
    }
    for pod in pods {
        let _ = pod.flush().await;
    }
    for listener in listeners {
        listener.abort();
    }
    result.map(|()| report)
}

fn config() -> Result<BreakerConfig, AnyError> {
    Ok(BreakerConfig::builder()
        .failure_threshold(FAILURE_THRESHOLD)
        .half_open_max_calls(HALF_OPEN_MAX_CALLS)
        .base_backoff(BASE_BACKOFF)
        .backoff_multiplier(1.5)
        .max_backoff(Duration::from_secs(5))
        .build()?)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn print_phases(label: &str, r: &Report, pods: usize) {
    let (s, d, c, w) = (r.steady.0, r.dead.0, r.recovering.0, r.whole.0);
    let rate = s[CALLS] as f64 / r.steady_secs;
    let (open_ms, closed_ms) = (
        r.open_after.as_secs_f64() * 1e3,
        r.closed_after.as_secs_f64() * 1e3,
    );
    println!(
        "[{label}] healthy: {} calls in {:.2} s = {rate:.0} calls/s over {pods} pods",
        s[CALLS], r.steady_secs
    );
    println!("[{label}]   cache {}", r.steady.hit_rate());
    println!("[{label}] agent-a dead: every pod heard it open {open_ms:.1} ms after it died");
    println!(
        "[{label}]   {} calls to it failed (wasted), {} refused without a call",
        d[WASTED], d[A_REJECTED]
    );
    println!("[{label}] agent-a recovered: every pod heard it closed {closed_ms:.1} ms later");
    println!(
        "[{label}]   {} probe calls, {} calls to it, {} refused",
        c[PROBES], c[A_CALLS], c[A_REJECTED]
    );
    println!(
        "[{label}] whole run: {} calls, agent-b refused {} times, cache {}",
        w[CALLS],
        w[B_REJECTED],
        r.whole.hit_rate()
    );
}

/// Deletes the run's keys on every server (a cluster node scans only its
/// own keys, and deletes them one by one: they are in different slots).
async fn clean_up(nodes: &mut [MultiplexedConnection], prefix: &str) -> Result<usize, AnyError> {
    let mut removed = 0;
    for conn in nodes {
        removed += commandstats::delete_prefix(conn, prefix).await?;
    }
    Ok(removed)
}

async fn run(
    target: &RedisTarget,
    prefix: &str,
    options: Options,
    nodes: &mut [MultiplexedConnection],
) -> Result<serde_json::Value, AnyError> {
    let config = config()?;
    println!(
        "{} pods, {} calls/s each (half to agent-a, half to agent-b); failure_threshold {FAILURE_THRESHOLD}, \
         half_open_max_calls {HALF_OPEN_MAX_CALLS}, base_backoff {} ms (first opening {} ms); key prefix {prefix}",
        options.pods,
        options.calls_per_sec,
        BASE_BACKOFF.as_millis(),
        (BASE_BACKOFF.as_secs_f64() * 1500.0).round(),
    );

    // Shared: every pod its own RedisStore (own pool), hence its own watcher.
    let mut shared = Vec::with_capacity(options.pods);
    for i in 0..options.pods {
        let store = RedisStore::builder_for(target.clone())
            .prefix(prefix)
            .pool_size(4)
            .build()
            .await?;
        let breaker = CircuitBreaker::builder()
            .store(store)
            .config(config)
            .instance_id(format!("pod-{i}"))
            .build()?;
        shared.push(breaker);
    }
    wait_for("every pod's subscription", Duration::from_secs(5), || {
        shared.iter().all(CircuitBreaker::is_watching)
    })
    .await?;
    let world = Arc::new(World::new(options.pods)?);
    let report = scenario("shared", &shared, &world, options, Some(nodes)).await?;
    drop(shared);
    let mut delays = world
        .delays
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    delays.sort_by(f64::total_cmp);

    let local: Vec<CircuitBreaker> = (0..options.pods)
        .map(|_| {
            CircuitBreaker::builder()
                .store(MemoryStore::new())
                .config(config)
                .build()
        })
        .collect::<Result<_, _>>()?;
    let local_world = Arc::new(World::new(options.pods)?);
    let local = scenario("local-only", &local, &local_world, options, None).await?;

    println!();
    print_phases("shared", &report, options.pods);
    print_phases("local-only", &local, options.pods);
    let steady_calls = report.steady.0[CALLS];
    let sent: u64 = report.commands.values().sum();
    let per_1000 = sent as f64 * 1000.0 / steady_calls.max(1) as f64;
    let per_pod_sec = sent as f64 / report.steady_secs / options.pods as f64;
    let by_name: Vec<String> = report
        .commands
        .iter()
        .map(|(n, c)| format!("{n} {c}"))
        .collect();
    println!(
        "[shared] Redis commands clients sent in the healthy window: {sent} ({})",
        by_name.join(", ")
    );
    println!("[shared]   = {per_1000:.3} per 1,000 calls, {per_pod_sec:.2} per pod per second");
    println!(
        "[shared]   (INFO commandstats deltas without the commands Redis ran inside our scripts,"
    );
    println!(
        "[shared]   {RUN_INSIDE_SCRIPTS}, whose FCALL or EVALSHA is counted, and without our own INFO)"
    );
    let (p50, p99) = (percentile(&delays, 50.0), percentile(&delays, 99.0));
    let max = delays.last().copied().unwrap_or(f64::NAN);
    println!(
        "[shared] propagation, transition at_ms to each pod's subscribe(): {} receipts (3 transitions x {} pods \
         expected), p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms",
        delays.len(),
        options.pods,
    );
    println!(
        "[shared]   (at_ms is Redis TIME rounded down to the ms: each figure overstates by 0 to 1 ms)"
    );
    let (wasted, probes) = (report.whole.0[WASTED], report.whole.0[PROBES]);
    let (local_wasted, local_probes) = (local.whole.0[WASTED], local.whole.0[PROBES]);
    let pods = options.pods as u64;
    let (threshold, max_calls) = (u64::from(FAILURE_THRESHOLD), u64::from(HALF_OPEN_MAX_CALLS));
    println!(
        "wasted calls: shared {wasted} (failure_threshold + pods = {}), local-only {local_wasted} \
         (failure_threshold x pods = {})",
        threshold + pods,
        threshold * pods,
    );
    println!(
        "probe calls: shared {probes} (half_open_max_calls = {max_calls}), local-only {local_probes} \
         (half_open_max_calls x pods = {})",
        max_calls * pods,
    );
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    Ok(serde_json::json!({
        "pods": options.pods,
        "calls_per_sec_per_pod": options.calls_per_sec,
        "failure_threshold": FAILURE_THRESHOLD,
        "half_open_max_calls": HALF_OPEN_MAX_CALLS,
        "base_backoff_ms": BASE_BACKOFF.as_millis() as u64,
        "wasted_calls": wasted,
        "local_only_wasted_calls": local_wasted,
        "probe_calls": probes,
        "local_only_probe_calls": local_probes,
        "propagation_p50_ms": round3(p50),
        "propagation_p99_ms": round3(p99),
        "propagation_max_ms": round3(max),
        "propagation_samples": delays.len(),
        "redis_commands_per_1000_calls": round3(per_1000),
        "redis_commands_per_pod_per_sec": round3(per_pod_sec),
        "redis_commands_by_name": report.commands,
        "steady_calls_per_sec": (steady_calls as f64 / report.steady_secs).round(),
        "steady_cache_hit_rate": report.steady.hit_ratio(),
        "steady_cache_misses": report.steady.0[MISSES],
    }))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), AnyError> {
    let options = flags::or_exit(parse_args(), USAGE);
    let Some(target) = RedisTarget::from_env()? else {
        println!(
            "the fleet simulation needs Redis: set REDIS_URL (or REDIS_CLUSTER_URLS), e.g.\n    \
             REDIS_URL=redis://127.0.0.1:6379 cargo run --release --example fleet\nnothing was started."
        );
        return Ok(());
    };
    let millis = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let prefix = format!("fleet-sim-{}-{millis}", std::process::id());
    let mut nodes = servers(&target).await?;
    println!("Redis: {target} ({} server(s) counted)", nodes.len());
    let work = async {
        match options.scenario {
            Scenario::Dies => run(&target, &prefix, options, &mut nodes).await,
            Scenario::Rate => policies::rate(&target, &prefix, options, &mut nodes).await,
            Scenario::SickPod => policies::sick_pod(&target, &prefix, options).await,
        }
    };
    let outcome = tokio::time::timeout(RUN_LIMIT, work).await;
    let removed = clean_up(&mut nodes, &prefix).await?;
    println!("removed {removed} keys under {prefix}*");
    match outcome {
        Ok(Ok(json)) => {
            println!("{json}");
            Ok(())
        }
        Ok(Err(error)) => Err(error),
        Err(_) => Err(format!("the run took longer than {RUN_LIMIT:?}; stopped").into()),
    }
}

/// A plain connection to every server that holds the fleet's keys: the one
/// Redis, or every master of a cluster (from `CLUSTER NODES`).
async fn servers(target: &RedisTarget) -> Result<Vec<MultiplexedConnection>, AnyError> {
    let connect = |url: String| async move {
        redis::Client::open(url.as_str())?
            .get_multiplexed_async_connection()
            .await
    };
    match target {
        RedisTarget::Single(url) => Ok(vec![connect(url.clone()).await?]),
        RedisTarget::Cluster(seeds) => {
            let mut seed = connect(seeds[0].clone()).await?;
            let nodes: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async(&mut seed)
                .await?;
            let mut masters = Vec::new();
            for line in nodes.lines() {
                let fields: Vec<&str> = line.split(' ').collect();
                if fields.len() > 8 && fields[2].contains("master") && !fields[2].contains("fail") {
                    let address = fields[1].split('@').next().unwrap_or_default();
                    // Credentials and db of the seed URL, the master's address.
                    let url = match seeds[0].split_once('@') {
                        Some((userinfo, _)) => format!("{userinfo}@{address}"),
                        None => format!("redis://{address}"),
                    };
                    masters.push(connect(url).await?);
                }
            }
            Ok(masters)
        }
        other => Err(format!(
            "the fleet simulation counts commands per server; give REDIS_URL or \
             REDIS_CLUSTER_URLS, not {other}"
        )
        .into()),
    }
}
