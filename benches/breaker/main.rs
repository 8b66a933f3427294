//! What one breaker decision costs, with and without the local cache, next
//! to a bare `EVALSHA` round trip and to two in-process peers.
//!
//! ```text
//! cargo bench --bench breaker                                  # starts a private redis-server
//! REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench breaker # or uses this one
//! ```
//!
//! - `cached_closed_admit_and_success`: `acquire` + `Permit::success` on a
//!   circuit the cache holds closed and clean (subscription up): no round
//!   trip, the success is counted locally. Target: at most 1.5x recloser's
//!   closed call.
//! - `handle_closed_admit_and_success`: the same through a pre-resolved
//!   [`AgentHandle`](fleet_breaker::breaker::AgentHandle)
//!   (`breaker.agent(&id)`, then `handle.acquire()` + `AgentPermit::success`):
//!   no hashing, no map lookup, no allocation. Target: at or below
//!   recloser's closed call.
//! - `handle_open_reject`: `handle.acquire()` on a circuit the cache holds
//!   forced open. Target: at or below recloser's rejection.
//! - `uncached_round_trip`: the same with `.local_cache(false)`: one script
//!   call for the acquire, one for the record. The cached path must be at
//!   least 200 times cheaper.
//! - `uncached_open_reject`: `acquire` on a forced-open circuit with
//!   `.local_cache(false)`: one script decision, one `EVALSHA`.
//! - `evalsha_round_trip`: a trivial script (`return 1`) by `EVALSHA` on the
//!   kind of connection the store sends its scripts down (a multiplexed
//!   connection out of the store's pool): the floor under an uncached
//!   decision.
//! - `cached_open_reject`: `acquire` on a circuit the cache holds forced
//!   open: a local rejection. Target: at or below recloser's rejection.
//! - `memory_admit_and_success`, `memory_open_reject`: the embedded store
//!   (`CircuitBreaker::in_memory()`). Target: admission at most 2x
//!   recloser's closed call.
//! - `try_{cached,handle}_closed_admit_and_success`,
//!   `try_{cached,handle}_open_reject`,
//!   `try_memory{,_handle}_admit_and_success`: the same with
//!   `try_acquire()` + `try_success()`, the synchronous path (no future),
//!   timed by criterion's `iter` as the peers are. Targets as above.
//! - `contended_{handle,acquire}_{1,2}_threads`: one or two OS threads
//!   calling the same closed agent at once (cached, on Redis), through a
//!   handle or `acquire`; the figure is wall time / threads, so one
//!   thread's over two threads' is the aggregate speed-up. Target (handle):
//!   at least 1.7x. `contended_control_*`: the same with no breaker (plain
//!   arithmetic per thread), the speed-up the machine allows at that moment.
//!   See `contention.rs`.
//! - `recloser_closed_call`, `recloser_open_reject`, `failsafe_closed_call`,
//!   `failsafe_open_reject`: the peers (recloser 1.x `Recloser::call`,
//!   failsafe 1.x `CircuitBreaker::call`), see `peers.rs`.
//!
//! Each fleet-breaker sample runs its iterations in a tight loop inside one
//! `block_on` (`iter_custom`) and times the loop, so the figure is the
//! per-call cost, not the cost of entering the runtime. The runtime is
//! multi-threaded: the watcher and the flusher keep the cache trusted on the
//! worker threads while the loop runs on the bench thread. The peers are
//! synchronous and timed by criterion's `iter`. After criterion's report, a
//! summary prints a table of each median (criterion's `estimates.json`) with
//! its ratio to recloser's of the same kind (admission or rejection), the
//! targets, the uncached / cached and uncached / `EVALSHA` ratios, and the
//! cache hits and misses seen during each cached bench. Last, 2,000
//! uncached decisions and 2,000 bare `EVALSHA`s alternated call by call give
//! the uncached goal's ratio again, both medians from the same moments; and
//! on a server the bench started, 2,000 of each run apart give Redis's own
//! time per call (`INFO commandstats`), which splits the gap into the
//! script's time in Redis and the client's.
//!
//! Without `REDIS_URL`, a `redis-server` from `PATH` is started on a free
//! loopback port (`--save '' --appendonly no`, a temporary `--dir`) and
//! killed at the end; the keys of the run are deleted either way. Nothing
//! goes beyond loopback unless `REDIS_URL` says so.

mod contention;
mod peers;
mod server;
mod summary;

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use fleet_breaker::breaker::{AgentHandle, CacheStats};
use fleet_breaker::{AgentId, CircuitBreaker, CircuitState, ForceMode, RedisStore};
use futures::StreamExt;
use tokio::runtime::Runtime;

use contention::Path;
use peers::{FAILSAFE_CLOSED, FAILSAFE_OPEN, Peers, RECLOSER_CLOSED, RECLOSER_OPEN};
use server::EvalSha;
use summary::Kind;

const GROUP: &str = "breaker";
/// Uncached decisions and bare `EVALSHA`s alternated after criterion's
/// run, for a ratio free of the drift between two benches.
const PAIRED: usize = 2000;
const CACHED_CLOSED: &str = "cached_closed_admit_and_success";
const UNCACHED: &str = "uncached_round_trip";
const UNCACHED_OPEN: &str = "uncached_open_reject";
const EVALSHA: &str = "evalsha_round_trip";
const CACHED_OPEN: &str = "cached_open_reject";
const MEMORY: &str = "memory_admit_and_success";
const MEMORY_OPEN: &str = "memory_open_reject";
const HANDLE: &str = "handle_closed_admit_and_success";
const HANDLE_OPEN: &str = "handle_open_reject";
const MEMORY_HANDLE: &str = "memory_handle_admit_and_success";
const TRY_CACHED: &str = "try_cached_closed_admit_and_success";
const TRY_HANDLE: &str = "try_handle_closed_admit_and_success";
const TRY_CACHED_OPEN: &str = "try_cached_open_reject";
const TRY_HANDLE_OPEN: &str = "try_handle_open_reject";
const TRY_MEMORY: &str = "try_memory_admit_and_success";
const TRY_MEMORY_HANDLE: &str = "try_memory_handle_admit_and_success";
const HANDLE_1: &str = "contended_handle_1_thread";
const HANDLE_2: &str = "contended_handle_2_threads";
const ACQUIRE_1: &str = "contended_acquire_1_thread";
const ACQUIRE_2: &str = "contended_acquire_2_threads";
const CONTROL_1: &str = "contended_control_1_thread";
const CONTROL_2: &str = "contended_control_2_threads";

/// One line of the summary.
struct Row {
    name: &'static str,
    kind: Kind,
    /// The goal: at most this ratio to recloser's figure of the same kind.
    max_vs_recloser: Option<f64>,
}

const fn row(name: &'static str, kind: Kind, max_vs_recloser: Option<f64>) -> Row {
    Row {
        name,
        kind,
        max_vs_recloser,
    }
}

/// The summary's rows, in the order the benches run.
const ROWS: &[Row] = &[
    row(CACHED_CLOSED, Kind::Admit, Some(1.5)),
    row(HANDLE, Kind::Admit, Some(1.0)),
    row(UNCACHED, Kind::Admit, None),
    row(UNCACHED_OPEN, Kind::Reject, None),
    row(EVALSHA, Kind::RoundTrip, None),
    row(CACHED_OPEN, Kind::Reject, Some(1.0)),
    row(HANDLE_OPEN, Kind::Reject, Some(1.0)),
    row(MEMORY, Kind::Admit, Some(2.0)),
    row(MEMORY_HANDLE, Kind::Admit, None),
    row(MEMORY_OPEN, Kind::Reject, None),
    row(TRY_CACHED, Kind::Admit, Some(1.5)),
    row(TRY_HANDLE, Kind::Admit, Some(1.0)),
    row(TRY_CACHED_OPEN, Kind::Reject, Some(1.0)),
    row(TRY_HANDLE_OPEN, Kind::Reject, Some(1.0)),
    row(TRY_MEMORY, Kind::Admit, Some(2.0)),
    row(TRY_MEMORY_HANDLE, Kind::Admit, None),
    row(HANDLE_1, Kind::Admit, None),
    row(HANDLE_2, Kind::Admit, None),
    row(ACQUIRE_1, Kind::Admit, None),
    row(ACQUIRE_2, Kind::Admit, None),
    row(CONTROL_1, Kind::RoundTrip, None),
    row(CONTROL_2, Kind::RoundTrip, None),
    row(RECLOSER_CLOSED, Kind::Admit, None),
    row(RECLOSER_OPEN, Kind::Reject, None),
    row(FAILSAFE_CLOSED, Kind::Admit, None),
    row(FAILSAFE_OPEN, Kind::Reject, None),
];

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "gave up after 5 s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The breakers and agents under test, ready: subscription up, entries warm.
struct Setup {
    cached: CircuitBreaker,
    uncached: CircuitBreaker,
    memory: CircuitBreaker,
    evalsha: EvalSha,
    peers: Peers,
    closed: AgentId,
    open: AgentId,
    plain: AgentId,
}

async fn setup(url: &str, prefix: &str) -> Setup {
    let store = |url: &str| RedisStore::builder(url).prefix(prefix).build();
    let cached = CircuitBreaker::builder()
        .store(store(url).await.expect("Redis cannot be reached"))
        .build()
        .expect("default config");
    let uncached_store = store(url).await.expect("Redis cannot be reached");
    let evalsha = EvalSha::new(&uncached_store).await;
    let uncached = CircuitBreaker::builder()
        .store(uncached_store)
        .local_cache(false)
        .build()
        .expect("default config");
    let agent = |id: &str| AgentId::new(id).expect("a valid agent id");
    let (closed, open, plain) = (
        agent("bench-closed"),
        agent("bench-open"),
        agent("bench-plain"),
    );
    assert!(
        cached.cache_stats().is_some(),
        "a Redis store with the cache on has a cache"
    );
    wait_until("the subscription", || cached.is_watching()).await;
    // First decisions go to Redis (and create the agents); the cache takes
    // the snapshots they answer with.
    for (breaker, agent) in [(&cached, &closed), (&cached, &open), (&uncached, &plain)] {
        let permit = breaker
            .acquire(agent)
            .await
            .expect("a new circuit is closed");
        permit.success().await;
    }
    let before = cached.cache_stats().expect("cached");
    let permit = cached.acquire(&closed).await.expect("closed");
    permit.success().await;
    assert_eq!(
        cached.cache_stats().expect("cached").hits,
        before.hits + 1,
        "the closed circuit should be decided locally"
    );
    // The feed gives the cache a transition before its subscribers.
    let mut heard = Box::pin(cached.subscribe());
    cached
        .force(&open, ForceMode::Open, None)
        .await
        .expect("force open");
    let forced = async {
        while let Some(t) = heard.next().await {
            if t.agent_id == open && t.to == CircuitState::ForcedOpen {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), forced)
        .await
        .expect("the forced_open transition reaches the cache within 5 s");
    assert!(
        cached.acquire(&open).await.is_err(),
        "a forced-open circuit rejects"
    );
    assert!(
        uncached.acquire(&open).await.is_err(),
        "the forced-open circuit rejects without the cache too"
    );
    let memory = CircuitBreaker::in_memory();
    // Only an acquire or a record creates an agent; a force needs one.
    let permit = memory
        .acquire(&open)
        .await
        .expect("a new circuit is closed");
    permit.success().await;
    memory
        .force(&open, ForceMode::Open, None)
        .await
        .expect("force open in memory");
    assert!(
        memory.acquire(&open).await.is_err(),
        "a forced-open circuit rejects in memory"
    );
    Setup {
        cached,
        uncached,
        memory,
        evalsha,
        peers: Peers::new(),
        closed,
        open,
        plain,
    }
}

/// `iters` admissions and successes in one tight loop; the loop's time.
async fn admit_and_succeed(breaker: CircuitBreaker, agent: AgentId, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let permit = breaker
            .acquire(black_box(&agent))
            .await
            .expect("the circuit is closed");
        permit.success().await;
    }
    start.elapsed()
}

/// [`admit_and_succeed`] through a handle.
async fn handle_admit_and_succeed(handle: AgentHandle, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let permit = black_box(&handle)
            .acquire()
            .await
            .expect("the circuit is closed");
        permit.success().await;
    }
    start.elapsed()
}

/// [`rejections`] through a handle.
async fn handle_rejections(handle: AgentHandle, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let rejected = black_box(&handle).acquire().await.err();
        black_box(rejected.expect("the circuit is forced open"));
    }
    start.elapsed()
}

/// `iters` rejected acquires in one tight loop; the loop's time.
async fn rejections(breaker: CircuitBreaker, agent: AgentId, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let rejected = breaker.acquire(black_box(&agent)).await.err();
        black_box(rejected.expect("the circuit is forced open"));
    }
    start.elapsed()
}

fn stats_delta(breaker: &CircuitBreaker, before: CacheStats) -> CacheStats {
    let after = breaker.cache_stats().expect("cached");
    CacheStats {
        hits: after.hits - before.hits,
        misses: after.misses - before.misses,
    }
}

/// Runs the benches of [`ROWS`], in its order; returns the cache hits and
/// misses during the two cached ones.
fn benches(c: &mut Criterion, rt: &Runtime, s: &Setup) -> Vec<(&'static str, CacheStats)> {
    let mut seen = Vec::new();
    let mut group = c.benchmark_group(GROUP);
    let before = s.cached.cache_stats().expect("cached");
    group.bench_function(CACHED_CLOSED, |b| {
        b.to_async(rt)
            .iter_custom(|n| admit_and_succeed(s.cached.clone(), s.closed.clone(), n));
    });
    seen.push((CACHED_CLOSED, stats_delta(&s.cached, before)));
    let before = s.cached.cache_stats().expect("cached");
    let handle = s.cached.agent(&s.closed);
    group.bench_function(HANDLE, |b| {
        b.to_async(rt)
            .iter_custom(|n| handle_admit_and_succeed(handle.clone(), n));
    });
    seen.push((HANDLE, stats_delta(&s.cached, before)));
    group.bench_function(UNCACHED, |b| {
        b.to_async(rt)
            .iter_custom(|n| admit_and_succeed(s.uncached.clone(), s.plain.clone(), n));
    });
    group.bench_function(UNCACHED_OPEN, |b| {
        b.to_async(rt)
            .iter_custom(|n| rejections(s.uncached.clone(), s.open.clone(), n));
    });
    group.bench_function(EVALSHA, |b| {
        b.to_async(rt)
            .iter_custom(|n| s.evalsha.clone().round_trips(n));
    });
    let before = s.cached.cache_stats().expect("cached");
    group.bench_function(CACHED_OPEN, |b| {
        b.to_async(rt)
            .iter_custom(|n| rejections(s.cached.clone(), s.open.clone(), n));
    });
    seen.push((CACHED_OPEN, stats_delta(&s.cached, before)));
    let before = s.cached.cache_stats().expect("cached");
    let handle = s.cached.agent(&s.open);
    group.bench_function(HANDLE_OPEN, |b| {
        b.to_async(rt)
            .iter_custom(|n| handle_rejections(handle.clone(), n));
    });
    seen.push((HANDLE_OPEN, stats_delta(&s.cached, before)));
    group.bench_function(MEMORY, |b| {
        b.to_async(rt)
            .iter_custom(|n| admit_and_succeed(s.memory.clone(), s.plain.clone(), n));
    });
    let handle = s.memory.agent(&s.plain);
    group.bench_function(MEMORY_HANDLE, |b| {
        b.to_async(rt)
            .iter_custom(|n| handle_admit_and_succeed(handle.clone(), n));
    });
    group.bench_function(MEMORY_OPEN, |b| {
        b.to_async(rt)
            .iter_custom(|n| rejections(s.memory.clone(), s.open.clone(), n));
    });
    try_benches(&mut group, rt, s);
    let before = s.cached.cache_stats().expect("cached");
    for (name, path, threads) in [
        (HANDLE_1, Path::Handle, 1),
        (HANDLE_2, Path::Handle, 2),
        (ACQUIRE_1, Path::Acquire, 1),
        (ACQUIRE_2, Path::Acquire, 2),
        (CONTROL_1, Path::Control, 1),
        (CONTROL_2, Path::Control, 2),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|n| contention::run(rt.handle(), &s.cached, &s.closed, path, threads, n));
        });
    }
    seen.push(("contended_*", stats_delta(&s.cached, before)));
    s.peers.bench(&mut group);
    group.finish();
    seen
}

/// The synchronous paths (`try_acquire` + `try_success`), timed by
/// criterion's `iter` as the peers are. Each agent is asked once with
/// `acquire` first, so that the cache holds it whichever benches run.
fn try_benches(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, s: &Setup) {
    rt.block_on(async {
        for (breaker, agent) in [
            (&s.cached, &s.closed),
            (&s.cached, &s.open),
            (&s.memory, &s.plain),
        ] {
            if let Ok(permit) = breaker.acquire(agent).await {
                permit.success().await;
            }
        }
    });
    let closed = |breaker: &CircuitBreaker, agent: &AgentId| {
        let permit = breaker.try_acquire(black_box(agent));
        let permit = permit
            .expect("decided here")
            .expect("the circuit is closed");
        permit.try_success().expect("counted locally");
    };
    let open = |breaker: &CircuitBreaker, agent: &AgentId| {
        let rejected = breaker.try_acquire(black_box(agent)).expect("decided here");
        black_box(rejected.expect_err("the circuit is forced open"));
    };
    let handle_closed = |handle: &AgentHandle| {
        let permit = black_box(handle).try_acquire();
        let permit = permit
            .expect("decided here")
            .expect("the circuit is closed");
        permit.try_success().expect("counted locally");
    };
    group.bench_function(TRY_CACHED, |b| b.iter(|| closed(&s.cached, &s.closed)));
    let handle = s.cached.agent(&s.closed);
    group.bench_function(TRY_HANDLE, |b| b.iter(|| handle_closed(&handle)));
    group.bench_function(TRY_CACHED_OPEN, |b| b.iter(|| open(&s.cached, &s.open)));
    let handle = s.cached.agent(&s.open);
    group.bench_function(TRY_HANDLE_OPEN, |b| {
        b.iter(|| {
            let rejected = black_box(&handle).try_acquire().expect("decided here");
            black_box(rejected.expect_err("the circuit is forced open"));
        });
    });
    group.bench_function(TRY_MEMORY, |b| b.iter(|| closed(&s.memory, &s.plain)));
    let handle = s.memory.agent(&s.plain);
    group.bench_function(TRY_MEMORY_HANDLE, |b| b.iter(|| handle_closed(&handle)));
}

fn main() {
    let since = SystemTime::now();
    let (url, server) = server::redis();
    let millis = since
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let prefix = format!("fleet-breaker-bench-{}-{millis}", std::process::id());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let setup = rt.block_on(setup(&url, &prefix));
    let mut criterion = Criterion::default().configure_from_args();
    let seen = benches(&mut criterion, &rt, &setup);
    criterion.final_summary();
    let (decision, evalsha) = rt.block_on(setup.evalsha.clone().paired(
        &setup.uncached,
        &setup.open,
        PAIRED,
    ));
    let server_times = if server.is_some() {
        let times = rt.block_on(setup.evalsha.clone().server_times(
            &url,
            &setup.uncached,
            &setup.open,
            PAIRED,
        ));
        Some(times.unwrap_or_else(|error| panic!("INFO commandstats: {error}")))
    } else {
        None
    };
    let paired = summary::Paired {
        n: PAIRED,
        decision,
        evalsha,
        server_times,
    };
    summary::print(since, &seen, paired);
    drop(setup);
    if let Err(error) = rt.block_on(server::clean_up(&url, &prefix)) {
        eprintln!("could not delete the keys under {prefix}: {error}");
    }
    drop(server);
}
