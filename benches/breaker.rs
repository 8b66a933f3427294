//! What one breaker decision costs, with and without the local cache.
//!
//! ```text
//! cargo bench --bench breaker                                  # starts a private redis-server
//! REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench breaker # or uses this one
//! ```
//!
//! - `cached_closed_admit_and_success`: `acquire` + `Permit::success` on a
//!   circuit the cache holds closed and clean (subscription up): no round
//!   trip, the success is counted locally. Target: median <= 100 ns.
//! - `uncached_round_trip`: the same with `.local_cache(false)`: one script
//!   call for the acquire, one for the record. The cached path must be at
//!   least 200 times cheaper.
//! - `cached_open_reject`: `acquire` on a circuit the cache holds forced
//!   open: a local rejection. Target: median <= 100 ns.
//! - `memory_admit_and_success`: the embedded store, for reference.
//!
//! Each sample runs its iterations in a tight loop inside one `block_on`
//! (`iter_custom`) and times the loop, so the figure is the per-call cost,
//! not the cost of entering the runtime. The runtime is multi-threaded: the
//! watcher and the flusher keep the cache trusted on the worker threads while
//! the loop runs on the bench thread. After criterion's report, a summary
//! prints each median (criterion's `estimates.json`), the ratio, the targets
//! and the cache hits and misses seen during each cached bench.
//!
//! Without `REDIS_URL`, a `redis-server` from `PATH` is started on a free
//! loopback port (`--save '' --appendonly no`, a temporary `--dir`) and
//! killed at the end; the keys of the run are deleted either way.

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::Criterion;
use fleet_breaker::cache::{Cache, CacheStats};
use fleet_breaker::{AgentId, CircuitBreaker, CircuitState, ForceMode, RedisStore};
use tokio::runtime::Runtime;

const GROUP: &str = "breaker";
const CACHED_CLOSED: &str = "cached_closed_admit_and_success";
const UNCACHED: &str = "uncached_round_trip";
const CACHED_OPEN: &str = "cached_open_reject";
const MEMORY: &str = "memory_admit_and_success";

/// A `redis-server` this bench started; killed on drop.
struct PrivateRedis {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `REDIS_URL`, or a private server on a free port (never 6379 implicitly).
fn redis() -> (String, Option<PrivateRedis>) {
    if let Ok(url) = std::env::var("REDIS_URL") {
        return (url, None);
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free loopback port")
        .port();
    let dir = tempfile::tempdir().expect("no temporary directory");
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("these benches need Redis: set REDIS_URL, or put redis-server on PATH");
    let server = PrivateRedis { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen on port {port} within 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (format!("redis://127.0.0.1:{port}"), Some(server))
}

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
    let uncached = CircuitBreaker::builder()
        .store(store(url).await.expect("Redis cannot be reached"))
        .local_cache(false)
        .build()
        .expect("default config");
    let agent = |id: &str| AgentId::new(id).expect("a valid agent id");
    let (closed, open, plain) = (
        agent("bench-closed"),
        agent("bench-open"),
        agent("bench-plain"),
    );
    let cache = Arc::clone(
        cached
            .cache()
            .expect("a Redis store with the cache on has a cache"),
    );
    wait_until("the subscription", || cache.is_subscribed()).await;
    // First decisions go to Redis (and create the agents); the cache takes
    // the snapshots they answer with.
    for (breaker, agent) in [(&cached, &closed), (&cached, &open), (&uncached, &plain)] {
        let permit = breaker
            .acquire(agent)
            .await
            .expect("a new circuit is closed");
        permit.success().await;
    }
    let before = cache.stats();
    let permit = cached.acquire(&closed).await.expect("closed");
    permit.success().await;
    assert_eq!(
        cache.stats().hits,
        before.hits + 1,
        "the closed circuit should be decided locally"
    );
    cached
        .force(&open, ForceMode::Open, None)
        .await
        .expect("force open");
    wait_until("the forced_open state in the cache", || {
        cache.state(&open) == Some(CircuitState::ForcedOpen)
    })
    .await;
    assert!(
        cached.acquire(&open).await.is_err(),
        "a forced-open circuit rejects"
    );
    Setup {
        cached,
        uncached,
        memory: CircuitBreaker::in_memory(),
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

/// `iters` rejected acquires in one tight loop; the loop's time.
async fn rejections(breaker: CircuitBreaker, agent: AgentId, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let rejected = breaker.acquire(black_box(&agent)).await.err();
        black_box(rejected.expect("the circuit is forced open"));
    }
    start.elapsed()
}

fn stats_delta(cache: &Cache, before: CacheStats) -> CacheStats {
    let after = cache.stats();
    CacheStats {
        hits: after.hits - before.hits,
        misses: after.misses - before.misses,
    }
}

/// Runs the four benches; returns the cache hits and misses during the two cached ones.
fn benches(c: &mut Criterion, rt: &Runtime, s: &Setup) -> Vec<(&'static str, CacheStats)> {
    let cache = Arc::clone(s.cached.cache().expect("cached"));
    let mut seen = Vec::new();
    let mut group = c.benchmark_group(GROUP);
    let before = cache.stats();
    group.bench_function(CACHED_CLOSED, |b| {
        b.to_async(rt)
            .iter_custom(|n| admit_and_succeed(s.cached.clone(), s.closed.clone(), n));
    });
    seen.push((CACHED_CLOSED, stats_delta(&cache, before)));
    group.bench_function(UNCACHED, |b| {
        b.to_async(rt)
            .iter_custom(|n| admit_and_succeed(s.uncached.clone(), s.plain.clone(), n));
    });
    let before = cache.stats();
    group.bench_function(CACHED_OPEN, |b| {
        b.to_async(rt)
            .iter_custom(|n| rejections(s.cached.clone(), s.open.clone(), n));
    });
    seen.push((CACHED_OPEN, stats_delta(&cache, before)));
    group.bench_function(MEMORY, |b| {
        b.to_async(rt)
            .iter_custom(|n| admit_and_succeed(s.memory.clone(), s.plain.clone(), n));
    });
    group.finish();
    seen
}

/// Where criterion writes its estimates (its own order of preference, with
/// `cargo metadata` replaced by the default target directory).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
            PathBuf::from,
        )
        .join("criterion")
}

/// The median (ns) criterion estimated in this run, if it ran the bench.
fn median_ns(name: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_dir()
        .join(GROUP)
        .join(name)
        .join("new/estimates.json");
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since);
    let text = std::fs::read_to_string(&path).ok().filter(|_| fresh)?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn summary(since: SystemTime, seen: &[(&str, CacheStats)]) {
    println!("\nbreaker bench summary (medians from criterion's estimates.json)");
    let medians: Vec<_> = [CACHED_CLOSED, UNCACHED, CACHED_OPEN, MEMORY]
        .into_iter()
        .map(|name| (name, median_ns(name, since)))
        .collect();
    for (name, median) in &medians {
        let target = match *name {
            CACHED_CLOSED | CACHED_OPEN => match median {
                Some(m) if *m <= 100.0 => "  (target <= 100 ns: met)",
                Some(_) => "  (target <= 100 ns: MISSED)",
                None => "",
            },
            _ => "",
        };
        match median {
            Some(m) => println!("  {name:<34} median {m:>12.1} ns{target}"),
            None => println!("  {name:<34} not measured in this run"),
        }
    }
    if let (Some(cached), Some(uncached)) = (medians[0].1, medians[1].1) {
        let ratio = uncached / cached;
        let verdict = if ratio >= 200.0 { "met" } else { "MISSED" };
        println!("  uncached / cached ratio: {ratio:.0}x (target >= 200x: {verdict})");
    }
    for (name, stats) in seen {
        println!(
            "  cache during {name}: {} hits, {} misses",
            stats.hits, stats.misses
        );
    }
}

/// Deletes the keys under `prefix` (SCAN MATCH + UNLINK).
async fn clean_up(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

fn main() {
    let since = SystemTime::now();
    let (url, server) = redis();
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
    summary(since, &seen);
    drop(setup);
    if let Err(error) = rt.block_on(clean_up(&url, &prefix)) {
        eprintln!("could not delete the keys under {prefix}: {error}");
    }
    drop(server);
}
