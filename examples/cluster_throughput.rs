//! Uncached decision throughput on a Redis Cluster versus a single Redis,
//! same machine, same run.
//!
//! ```sh
//! cargo run --release --example cluster_throughput            # starts both itself
//! cargo run --release --example cluster_throughput -- --secs 5 --tasks 64 --rounds 2
//! REDIS_URL=redis://127.0.0.1:6390 REDIS_CLUSTER_URLS=redis://127.0.0.1:7000,redis://127.0.0.1:7001 \
//!     cargo run --release --example cluster_throughput        # uses yours
//! ```
//!
//! Without `REDIS_URL` and `REDIS_CLUSTER_URLS` it starts a private
//! `redis-server` and a three-master cluster (`redis-server
//! --cluster-enabled yes` joined by `redis-cli --cluster create`) on free
//! loopback ports, and kills them at the end: `redis-server` and
//! `redis-cli` must be on `PATH`.
//!
//! Each measurement is one breaker with the local cache off (every
//! decision is a script in Redis), `--tasks` tasks each looping `acquire`
//! then `success` (two `EVALSHA`) over 30 agents for `--secs` seconds, after
//! a one-second warm-up; the rounds alternate single and cluster. It prints
//! acquire + success pairs per second, scripts per second, and the median
//! and 99th percentile of a pair. On servers you give, it leaves the keys
//! of its 30 agents under `throughput-PID`.

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fleet_breaker::{AgentId, CircuitBreaker, RedisStore, RedisTarget};

type Error = Box<dyn std::error::Error + Send + Sync>;

const AGENTS: usize = 30;

/// `redis-server` children, killed on drop.
struct Servers {
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loopback port free together with its cluster bus port (+10000).
fn free_port(taken: &[u16]) -> u16 {
    loop {
        let seed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind 127.0.0.1:0");
        let port = 20_000 + seed % 30_000;
        let free = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
        if port != 6379 && !taken.contains(&port) && free(port) && free(port + 10_000) {
            return port;
        }
    }
}

fn answers(port: u16, command: &str, expect: &str) -> bool {
    let Ok(output) = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(command.split(' '))
        .output()
    else {
        return false;
    };
    String::from_utf8_lossy(&output.stdout).contains(expect)
}

fn wait(what: &str, mut ready: impl FnMut() -> bool) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        if Instant::now() > deadline {
            return Err(format!("{what} did not happen within 20 s").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// One plain server and a three-master cluster: (single URL, cluster URLs).
fn start_servers() -> Result<(Servers, String, Vec<String>), Error> {
    let mut servers = Servers {
        children: Vec::new(),
        _dir: tempfile::tempdir()?,
    };
    let dir = servers._dir.path().to_owned();
    let mut ports = Vec::new();
    for i in 0..4 {
        let port = free_port(&ports);
        ports.push(port);
        let node_dir = dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir)?;
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if i > 0 {
            command.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ]);
        }
        servers.children.push(command.spawn()?);
        wait("redis-server answering PING", || {
            answers(port, "PING", "PONG")
        })?;
    }
    let mut create = Command::new("redis-cli");
    create.args(["--cluster", "create"]);
    for port in &ports[1..] {
        create.arg(format!("127.0.0.1:{port}"));
    }
    let output = create
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        )
        .into());
    }
    for &port in &ports[1..] {
        wait("the cluster state ok", || {
            answers(port, "CLUSTER INFO", "cluster_state:ok")
        })?;
    }
    let url = |port: &u16| format!("redis://127.0.0.1:{port}");
    Ok((
        servers,
        url(&ports[0]),
        ports[1..].iter().map(url).collect(),
    ))
}

struct Figures {
    pairs_per_sec: f64,
    p50_us: u128,
    p99_us: u128,
}

async fn measure(target: RedisTarget, secs: u64, tasks: usize) -> Result<Figures, Error> {
    let prefix = format!("throughput-{}", std::process::id());
    let store = RedisStore::builder_for(target)
        .prefix(prefix)
        .timeout(Duration::from_secs(1))
        .build()
        .await?;
    let breaker = CircuitBreaker::builder()
        .store(store)
        .local_cache(false)
        .build()?;
    let agents: Arc<Vec<AgentId>> = Arc::new(
        (0..AGENTS)
            .map(|i| AgentId::new(&format!("agent-{i}")))
            .collect::<Result<_, _>>()?,
    );
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let (breaker, agents) = (breaker.clone(), Arc::clone(&agents));
        let (measuring, stop) = (Arc::clone(&measuring), Arc::clone(&stop));
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = task;
            while !stop.load(Ordering::Relaxed) {
                let agent = &agents[i % agents.len()];
                i += 1;
                let started = Instant::now();
                if let Ok(permit) = breaker.acquire(agent).await {
                    permit.success().await;
                }
                if measuring.load(Ordering::Relaxed) {
                    latencies.push(started.elapsed().as_micros());
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for handle in handles {
        latencies.extend(handle.await?);
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    Ok(Figures {
        pairs_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_us: at(0.5),
        p99_us: at(0.99),
    })
}

fn option(args: &[String], name: &str, default: u64) -> Result<u64, Error> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args
            .get(i + 1)
            .ok_or_else(|| format!("{name} needs a value"))?
            .parse()?),
        None => Ok(default),
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs = option(&args, "--secs", 5)?;
    let tasks = usize::try_from(option(&args, "--tasks", 64)?)?;
    let rounds = option(&args, "--rounds", 2)?;
    let given = (
        std::env::var("REDIS_URL").ok(),
        std::env::var("REDIS_CLUSTER_URLS").ok(),
    );
    let (_servers, single, cluster) = match given {
        (Some(url), Some(list)) => (
            None,
            RedisTarget::parse(&url)?,
            RedisTarget::cluster_list(&list)?,
        ),
        _ => {
            let (servers, url, nodes) = start_servers()?;
            println!(
                "started redis-server {url} and a cluster of {} masters",
                nodes.len()
            );
            (
                Some(servers),
                RedisTarget::Single(url),
                RedisTarget::Cluster(nodes),
            )
        }
    };
    println!(
        "uncached acquire + success pairs (2 scripts each): {tasks} tasks, {AGENTS} agents, \
         {secs} s per measurement, {rounds} rounds"
    );
    let mut best = [0.0f64; 2];
    for round in 1..=rounds {
        for (index, (name, target)) in [("single", &single), ("cluster", &cluster)]
            .into_iter()
            .enumerate()
        {
            let f = measure(target.clone(), secs, tasks).await?;
            best[index] = best[index].max(f.pairs_per_sec);
            println!(
                "round {round} {name:<8} {:>8.0} pairs/s  {:>8.0} scripts/s  p50 {} us  p99 {} us",
                f.pairs_per_sec,
                f.pairs_per_sec * 2.0,
                f.p50_us,
                f.p99_us
            );
        }
    }
    println!(
        "best: single {:.0} pairs/s, cluster {:.0} pairs/s, cluster/single {:.2}",
        best[0],
        best[1],
        best[1] / best[0]
    );
    Ok(())
}
