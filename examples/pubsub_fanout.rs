//! What it costs a Redis Cluster to deliver every message to every pod:
//! `PUBLISH` (a cluster broadcasts it to every node) against sharded
//! `SPUBLISH` (one shard channel per master, served by that master only),
//! on raw connections, without fleet-breaker.
//!
//! ```text
//! REDIS_CLUSTER_URLS=redis://127.0.0.1:P1 cargo run --release --example pubsub_fanout -- --subscribers 256 --rate 200
//! ```
//!
//! - `publish`: each subscriber `SUBSCRIBE`s to one channel on one node
//!   (round-robin over the masters); the publisher sends message `k` to
//!   master `k mod masters`, as the fleet's scripts publish on the master
//!   of their agent.
//! - `spublish`: one shard channel per master (a hash tag that master
//!   owns); each subscriber `SSUBSCRIBE`s to every one of them through a
//!   cluster connection (a connection per master); message `k` goes to
//!   the channel of master `k mod masters`.
//!
//! Each message carries its send time; each subscriber records the delay at
//! receipt. Per mode: per master `INFO` deltas (CPU, commands, bytes out),
//! deliveries received against expected, delay p50/p99/max, and this
//! process's CPU. Messages are about 180 bytes, like a transition. A human
//! summary, then one line of JSON per mode. Use a cluster nobody else uses.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

#[path = "support/flags.rs"]
mod flags;
#[path = "support/load.rs"]
mod load;
use load::{Master, ProcessCpu, Rates, info_all, load_average, masters, percentile, rates};

const USAGE: &str = "\
pubsub_fanout: PUBLISH against sharded SPUBLISH to N subscribers on a Redis Cluster

USAGE:
    REDIS_CLUSTER_URLS=redis://127.0.0.1:PORT cargo run --release --example pubsub_fanout -- [OPTIONS]

OPTIONS:
    --subscribers N   subscribers (pods) [default: 256]
    --rate N          messages published per second [default: 200]
    --secs N          how long each mode publishes [default: 10]
    --mode M          publish, spublish or both [default: both]
    -h, --help        this text";

#[derive(Debug, Clone)]
struct Options {
    subscribers: usize,
    rate: u64,
    secs: u64,
    modes: Vec<&'static str>,
}

fn parse_args() -> Result<Option<Options>, String> {
    let mut o = Options {
        subscribers: 256,
        rate: 200,
        secs: 10,
        modes: vec!["publish", "spublish"],
    };
    let go_on = flags::parse(|flag| {
        match flag.name.as_str() {
            "--subscribers" => o.subscribers = flag.number(1, 4096)? as usize,
            "--rate" => o.rate = flag.number(1, 100_000)?,
            "--secs" => o.secs = flag.number(1, 120)?,
            "--mode" => {
                o.modes = match flag.value.as_str() {
                    "publish" => vec!["publish"],
                    "spublish" => vec!["spublish"],
                    "both" => vec!["publish", "spublish"],
                    _ => {
                        return Err(format!(
                            "--mode takes publish, spublish or both, not {:?}",
                            flag.value
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
    Ok(Some(o))
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// About the size of a transition message, starting with its send time.
fn payload(k: u64) -> String {
    format!("{:020} {k:010} {}", micros_now(), "x".repeat(148))
}

/// Delays in µs seen by one subscriber (its connection's push callback).
type Delays = Arc<Mutex<Vec<u32>>>;

/// A push callback that records the delay of every message.
fn recorder(delays: Delays) -> impl Fn(PushInfo) -> Result<(), String> + Send + Sync + 'static {
    move |push: PushInfo| {
        if matches!(push.kind, PushKind::Message | PushKind::SMessage)
            && let Some(Value::BulkString(bytes)) = push.data.get(1)
            && let Some(sent) = bytes
                .get(..20)
                .and_then(|b| std::str::from_utf8(b).ok()?.parse::<u64>().ok())
        {
            let delay = micros_now().saturating_sub(sent).min(u64::from(u32::MAX)) as u32;
            delays
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(delay);
        }
        Ok(())
    }
}

/// A shard channel whose hash tag each master owns, in master order.
async fn shard_channels(nodes: &mut [Master]) -> Result<Vec<String>, AnyError> {
    let mut channels = Vec::new();
    for index in 0..nodes.len() {
        let mut found = None;
        for n in 0..100_000 {
            let name = format!("fanout:{{s{n}}}");
            let slot: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&name)
                .query_async(&mut nodes[0].conn)
                .await?;
            if nodes[index]
                .slots
                .iter()
                .any(|(lo, hi)| (*lo..=*hi).contains(&slot))
            {
                found = Some(name);
                break;
            }
        }
        channels.push(found.ok_or("no hash tag found for a master")?);
    }
    Ok(channels)
}

/// A subscriber's connection, held only to keep it open: dropping it closes it.
type Subscriber = Box<dyn std::any::Any + Send>;

async fn subscribe(
    mode: &str,
    urls: &[String],
    shards: &[String],
    index: usize,
    delays: Delays,
) -> Result<Subscriber, AnyError> {
    if mode == "publish" {
        let url = format!("{}?protocol=resp3", urls[index % urls.len()]);
        let config = AsyncConnectionConfig::new().set_push_sender(recorder(delays));
        let mut conn = redis::Client::open(url)?
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        conn.subscribe("fanout:all").await?;
        return Ok(Box::new(conn));
    }
    let client = redis::cluster::ClusterClientBuilder::new(urls.to_vec())
        .use_protocol(ProtocolVersion::RESP3)
        .push_sender(recorder(delays))
        .build()?;
    let mut conn = client.get_async_connection().await?;
    for shard in shards {
        conn.ssubscribe(shard).await?;
    }
    Ok(Box::new(conn))
}

async fn measure(
    mode: &'static str,
    o: &Options,
    seed: &str,
) -> Result<serde_json::Value, AnyError> {
    let mut nodes = masters(seed).await?;
    let urls: Vec<String> = nodes.iter().map(|m| m.url.clone()).collect();
    let shards = if mode == "spublish" {
        shard_channels(&mut nodes).await?
    } else {
        Vec::new()
    };
    let publishers: Vec<MultiplexedConnection> = nodes.iter().map(|m| m.conn.clone()).collect();
    let mut servers = publishers.clone();
    let all: Vec<Delays> = (0..o.subscribers).map(|_| Delays::default()).collect();
    let mut subscribers = Vec::with_capacity(o.subscribers);
    for (i, delays) in all.iter().enumerate() {
        subscribers.push(subscribe(mode, &urls, &shards, i, Arc::clone(delays)).await?);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let load_before = load_average();
    let (before, client_cpu, start) = (
        info_all(&mut servers).await?,
        ProcessCpu::start(),
        Instant::now(),
    );
    let mut sent = 0u64;
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    while start.elapsed() < Duration::from_secs(o.secs) {
        ticks.tick().await;
        let due = (start.elapsed().as_secs_f64() * o.rate as f64) as u64;
        // The messages due, sent at once (pipelined on the multiplexed
        // connections): a slow round trip does not hold back the schedule.
        let burst = (sent..due).map(|k| {
            let master = (k % publishers.len() as u64) as usize;
            let (command, channel) = match mode {
                "publish" => ("PUBLISH", "fanout:all"),
                _ => ("SPUBLISH", shards[master].as_str()),
            };
            let mut conn = publishers[master].clone();
            let cmd = redis::cmd(command).arg(channel).arg(payload(k)).clone();
            async move { cmd.query_async::<u64>(&mut conn).await }
        });
        for reply in futures::future::join_all(burst).await {
            reply?;
        }
        sent = sent.max(due);
    }
    let publishing = start.elapsed().as_secs_f64();
    // The last messages' deliveries, inside the window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let secs = start.elapsed().as_secs_f64();
    let (after, client) = (info_all(&mut servers).await?, client_cpu.share());
    let load_after = load_average();
    drop(subscribers);

    let mut delays: Vec<f64> = all
        .iter()
        .flat_map(|d| d.lock().unwrap_or_else(PoisonError::into_inner).clone())
        .map(|us| f64::from(us) / 1000.0)
        .collect();
    delays.sort_by(f64::total_cmp);
    let per_node = rates(&before, &after, secs);
    let expected = sent * o.subscribers as u64;
    let (p50, p99) = (percentile(&delays, 50.0), percentile(&delays, 99.0));
    let max = delays.last().copied().unwrap_or(f64::NAN);
    println!(
        "[{mode}] {} subscribers, {sent} messages in {publishing:.1} s ({:.0}/s), window {secs:.1} s, load average {load_before} -> {load_after}",
        o.subscribers,
        sent as f64 / publishing
    );
    for (i, r) in per_node.iter().enumerate() {
        println!(
            "[{mode}]   master {i}: CPU {:.1}% of a core, {:.0} commands/s, {:.0} {mode}/s, {:.2} MB/s out, {} clients",
            r.cpu * 100.0,
            r.commands,
            if mode == "publish" {
                r.publish
            } else {
                r.spublish
            },
            r.out_bytes / 1e6,
            r.clients
        );
    }
    println!(
        "[{mode}]   delivered {} of {expected} ({:.0}/s), delay p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
        delays.len(),
        delays.len() as f64 / secs
    );
    println!(
        "[{mode}]   this process (publisher and subscribers): {:.1}% of a core",
        client * 100.0
    );
    let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
    Ok(serde_json::json!({
        "mode": mode, "subscribers": o.subscribers, "rate": o.rate, "window_secs": r3(secs),
        "sent": sent, "expected_deliveries": expected, "deliveries": delays.len(),
        "deliveries_per_sec": r3(delays.len() as f64 / secs),
        "delay_p50_ms": r3(p50), "delay_p99_ms": r3(p99), "delay_max_ms": r3(max),
        "masters": per_node.iter().map(Rates::json).collect::<Vec<_>>(),
        "cpu_all_masters_share_of_one_core": r3(per_node.iter().map(|r| r.cpu).sum()),
        "client_cpu_share_of_one_core": r3(client),
        "load_before": load_before, "load_after": load_after,
    }))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), AnyError> {
    let o = flags::or_exit(parse_args(), USAGE);
    let Some(seed) = std::env::var("REDIS_CLUSTER_URLS").ok().and_then(|list| {
        list.split(',')
            .map(str::trim)
            .find(|u| !u.is_empty())
            .map(str::to_owned)
    }) else {
        println!(
            "pubsub_fanout needs a Redis Cluster: set REDIS_CLUSTER_URLS; nothing was started."
        );
        return Ok(());
    };
    let mut lines = Vec::new();
    for mode in o.modes.clone() {
        let limit = Duration::from_secs(o.secs + 60);
        let json = tokio::time::timeout(limit, measure(mode, &o, &seed))
            .await
            .map_err(|_| format!("{mode}: the run took longer than {limit:?}; stopped"))??;
        lines.push(json);
    }
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
