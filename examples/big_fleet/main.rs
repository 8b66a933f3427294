//! Hundreds of pods and thousands of agents on one Redis (or a cluster):
//! what the fleet costs Redis while agents keep failing and recovering.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:PORT cargo run --release --example big_fleet -- --pods 256 --agents 10000
//! REDIS_URL=redis://127.0.0.1:PORT cargo run --release --example big_fleet -- --spread 40 --calls-per-sec 10 --staleness-ms 10000 --flush-ms 10000
//! REDIS_CLUSTER_URLS=redis://127.0.0.1:P1,redis://127.0.0.1:P2 cargo run --release --example big_fleet
//! ```
//!
//! `--pods` breakers in one process, each with its own `RedisStore` (pool
//! and watcher). Pod `i` calls a spread of `--spread` agents (a window of
//! the agent list starting at `i x agents / pods`), picked at random, at
//! `--calls-per-sec`, one call at a time. `--flaps-per-sec` times a second
//! a random agent dies for `--dead-ms`: a breaker of its own (no cache)
//! makes the failing calls that open its circuit, then probes it once it
//! has recovered until it is closed: three transitions, each published to
//! every pod, at a rate that does not depend on the pods' calls.
//!
//! After a 5 s warm-up, one window of `--secs` is measured: per server,
//! `INFO` deltas (CPU, commands, `PUBLISH` runs, bytes out), memory and
//! clients; the commands the pods sent (`INFO commandstats`, without those
//! run inside the scripts); the pods' store errors and degraded mode;
//! pub/sub deliveries (publishes x subscribers of the fleet's channels);
//! this process's CPU; and propagation, from each transition's `at_ms` to
//! each pod's `subscribe()`, per receipt and per transition (the last pod
//! to hear it). A human summary, then one line of JSON. Keys live under a
//! prefix unique to the run and are deleted at the end. Use Redis servers
//! nobody else is using: the counters are server-wide. Figures and what
//! they mean: docs/scale.md.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fleet_breaker::{AgentId, BreakerConfig, CircuitBreaker, RedisStore, RedisTarget};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

#[path = "../support/commandstats.rs"]
mod commandstats;
#[path = "../support/flags.rs"]
mod flags;
#[path = "../support/load.rs"]
mod load;
mod options;
mod report;
mod world;

use commandstats::{client_commands_on, commandstats_all};
use load::{ProcessCpu, info_all, load_average, masters, rates};
use options::{Options, USAGE, parse_args};
use report::Measured;
use world::{World, flapper, listen, pod};

/// Failures in a row that open a circuit.
const FAILURE_THRESHOLD: u32 = 5;

fn config() -> Result<BreakerConfig, AnyError> {
    Ok(BreakerConfig::builder()
        .failure_threshold(FAILURE_THRESHOLD)
        .half_open_max_calls(3)
        .base_backoff(Duration::from_millis(200))
        .backoff_multiplier(1.5)
        .max_backoff(Duration::from_secs(5))
        .build()?)
}

async fn store(target: &RedisTarget, prefix: &str, o: Options) -> Result<RedisStore, AnyError> {
    Ok(RedisStore::builder_for(target.clone())
        .prefix(prefix)
        .pool_size(o.pool_size)
        .timeout(Duration::from_millis(o.timeout_ms))
        .build()
        .await?)
}

async fn build_pods(
    target: &RedisTarget,
    prefix: &str,
    o: Options,
) -> Result<Vec<CircuitBreaker>, AnyError> {
    let config = config()?;
    let mut pods = Vec::with_capacity(o.pods);
    for i in 0..o.pods {
        let store = store(target, prefix, o).await?;
        pods.push(
            CircuitBreaker::builder()
                .store(store)
                .config(config)
                .instance_id(format!("pod-{i}"))
                .max_staleness(Duration::from_millis(o.staleness_ms))
                .flush_interval(Duration::from_millis(o.flush_ms))
                .build()?,
        );
    }
    let start = Instant::now();
    while !pods.iter().all(CircuitBreaker::is_watching) {
        if start.elapsed() > Duration::from_secs(30) {
            return Err("not every pod subscribed within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(pods)
}

/// Store errors (timeouts, lost connections) and entries into degraded
/// mode, summed over the pods; and how many pods are degraded now.
fn store_trouble(pods: &[CircuitBreaker]) -> [u64; 3] {
    let stats = pods.iter().map(CircuitBreaker::store_stats);
    [
        stats.clone().map(|s| s.errors).sum(),
        stats.map(|s| s.degraded_entered).sum(),
        pods.iter().filter(|p| p.is_degraded()).count() as u64,
    ]
}

/// Subscribers of `channel` summed over the servers (a cluster node counts
/// only its own clients).
async fn subscribers(
    nodes: &mut [redis::aio::MultiplexedConnection],
    channel: &str,
) -> Result<u64, AnyError> {
    let mut total = 0;
    for conn in nodes {
        let reply: Vec<(String, u64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(conn)
            .await?;
        total += reply.iter().map(|(_, n)| n).sum::<u64>();
    }
    Ok(total)
}

async fn run(
    target: &RedisTarget,
    seed: &str,
    prefix: &str,
    o: Options,
) -> Result<Measured, AnyError> {
    let found = masters(seed).await?;
    let urls: Vec<&str> = found.iter().map(|m| m.url.as_str()).collect();
    println!("servers counted: {}", urls.join(", "));
    let mut servers: Vec<_> = found.iter().map(|m| m.conn.clone()).collect();
    let idle = info_all(&mut servers).await?;
    let pods = build_pods(target, prefix, o).await?;
    let world = Arc::new(World {
        agents: (0..o.agents)
            .map(|i| AgentId::new(&format!("agent-{i:06}")))
            .collect::<Result<_, _>>()?,
        dead_until: (0..o.agents).map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
        counting: AtomicBool::new(false),
        counts: Default::default(),
        receipts: Mutex::default(),
    });
    let listeners: Vec<_> = pods.iter().map(|b| listen(b, Arc::clone(&world))).collect();
    let mut tasks: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, b)| tokio::spawn(pod(i, b.clone(), Arc::clone(&world), o)))
        .collect();
    let tripper = CircuitBreaker::builder()
        .store(store(target, prefix, o).await?)
        .config(config()?)
        .local_cache(false)
        .instance_id("tripper")
        .build()?;
    tasks.push(tokio::spawn(flapper(Arc::clone(&world), tripper, o)));
    println!("warming up 5 s: every agent of every spread called, flaps under way");
    tokio::time::sleep(Duration::from_secs(5)).await;

    let (load_before, counted_before) = (load_average(), world.counted());
    let store_before = store_trouble(&pods);
    let stats_before = commandstats_all(&mut servers).await?;
    let (before, client_cpu, start) = (
        info_all(&mut servers).await?,
        ProcessCpu::start(),
        Instant::now(),
    );
    world.counting.store(true, Ordering::Release);
    tokio::time::sleep(Duration::from_secs(o.secs)).await;
    world.counting.store(false, Ordering::Release);
    let (after, secs, client) = (
        info_all(&mut servers).await?,
        start.elapsed().as_secs_f64(),
        client_cpu.share(),
    );
    let mut sent = client_commands_on(
        &stats_before,
        &commandstats_all(&mut servers).await?,
        servers.len() as u64,
    );
    // Ours, not the fleet's: the INFO reads around the window.
    sent.remove("info");
    let counted: Vec<u64> = world
        .counted()
        .iter()
        .zip(counted_before)
        .map(|(a, b)| a - b)
        .collect();
    let (events, counts) = (
        subscribers(&mut servers, &format!("{prefix}:events")).await?,
        subscribers(&mut servers, &format!("{prefix}:counts")).await?,
    );
    let load_after = load_average();
    world.stop.store(true, Ordering::Release);
    for task in tasks {
        let _ = task.await;
    }
    for listener in listeners {
        listener.abort();
    }
    let store = store_trouble(&pods);
    let store = [
        store[0] - store_before[0],
        store[1] - store_before[1],
        store[2],
    ];
    drop(pods);

    let (mut delays, each) = {
        let r = world
            .receipts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (
            r.delays.clone(),
            r.each.values().copied().collect::<Vec<_>>(),
        )
    };
    delays.sort_by(f64::total_cmp);
    let mut last: Vec<f64> = each
        .iter()
        .filter(|(n, _)| *n == o.pods)
        .map(|(_, max)| *max)
        .collect();
    last.sort_by(f64::total_cmp);
    Ok(Measured {
        o,
        secs,
        loads: (load_before, load_after),
        counted: std::array::from_fn(|i| counted[i]),
        per_node: rates(&before, &after, secs),
        idle_memory: idle.iter().map(|i| i.num("used_memory")).sum(),
        subscribers: (events, counts),
        delays,
        last,
        transitions: each.len(),
        client,
        sent,
        store,
    })
}

/// Deletes the run's keys on every server.
async fn clean_up(seed: &str, prefix: &str) -> Result<usize, AnyError> {
    let mut removed = 0;
    for master in masters(seed).await? {
        let mut conn = master.conn;
        removed += commandstats::delete_prefix(&mut conn, prefix).await?;
    }
    Ok(removed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), AnyError> {
    let o = flags::or_exit(parse_args(), USAGE);
    let seed = match RedisTarget::from_env()? {
        Some(RedisTarget::Single(url)) => url,
        Some(RedisTarget::Cluster(seeds)) => seeds[0].clone(),
        Some(other) => {
            return Err(format!("give REDIS_URL or REDIS_CLUSTER_URLS, not {other}").into());
        }
        None => {
            println!(
                "big_fleet needs Redis: set REDIS_URL or REDIS_CLUSTER_URLS; nothing was started."
            );
            return Ok(());
        }
    };
    let target = RedisTarget::from_env()?.ok_or("REDIS_URL vanished")?;
    let millis = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let prefix = format!("big-fleet-{}-{millis}", std::process::id());
    let limit = Duration::from_secs(o.secs + 120);
    let outcome = tokio::time::timeout(limit, run(&target, &seed, &prefix, o)).await;
    println!(
        "removed {} keys under {prefix}*",
        clean_up(&seed, &prefix).await?
    );
    match outcome {
        Ok(Ok(measured)) => {
            println!();
            measured.print();
            println!("{}", measured.json());
            Ok(())
        }
        Ok(Err(error)) => Err(error),
        Err(_) => Err(format!("the run took longer than {limit:?}; stopped").into()),
    }
}
