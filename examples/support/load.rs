//! What a run cost, read from the servers and from this process: `INFO`
//! counters of every server (CPU, memory, commands, network, clients),
//! this process's CPU from `/proc/self/stat`, and the load average. For the
//! examples that measure a big fleet (`big_fleet`, `pubsub_fanout`).

use std::collections::BTreeMap;
use std::time::Instant;

use redis::aio::MultiplexedConnection;

/// One server's `INFO cpu memory stats clients commandstats`, as
/// field -> value (`cmdstat_publish` -> `calls=...,usec=...`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Info(BTreeMap<String, String>);

impl Info {
    pub(crate) async fn read(conn: &mut MultiplexedConnection) -> redis::RedisResult<Self> {
        let text: String = redis::cmd("INFO")
            .arg(&["cpu", "memory", "stats", "clients", "commandstats"])
            .query_async(conn)
            .await?;
        Ok(Self(
            text.lines()
                .filter_map(|line| line.split_once(':'))
                .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
                .collect(),
        ))
    }

    /// A numeric field, 0 when absent.
    pub(crate) fn num(&self, field: &str) -> f64 {
        self.0
            .get(field)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// CPU seconds the server has used, user + system (main thread and
    /// children alike).
    pub(crate) fn cpu_secs(&self) -> f64 {
        self.num("used_cpu_sys") + self.num("used_cpu_user")
    }

    /// `calls=` of `cmdstat_NAME`: every run of the command, those inside
    /// scripts included.
    pub(crate) fn calls(&self, command: &str) -> f64 {
        self.0
            .get(&format!("cmdstat_{command}"))
            .and_then(|v| v.split(',').find_map(|kv| kv.strip_prefix("calls=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0)
    }
}

/// One server's counters over a window, per second of wall time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rates {
    /// Share of one core: CPU seconds / wall seconds.
    pub(crate) cpu: f64,
    /// `total_commands_processed` per second (the commands scripts run
    /// inside Redis included).
    pub(crate) commands: f64,
    /// `PUBLISH` runs per second (those inside scripts included).
    pub(crate) publish: f64,
    /// `SPUBLISH` runs per second.
    pub(crate) spublish: f64,
    /// `total_net_output_bytes` per second.
    pub(crate) out_bytes: f64,
    /// `used_memory` at the end.
    pub(crate) memory: f64,
    /// `mem_clients_normal` at the end: the clients' buffers, in `memory`.
    pub(crate) client_memory: f64,
    /// `connected_clients` at the end.
    pub(crate) clients: f64,
}

impl Rates {
    pub(crate) fn between(before: &Info, after: &Info, secs: f64) -> Self {
        let per_sec = |a: f64, b: f64| (a - b) / secs;
        Self {
            cpu: per_sec(after.cpu_secs(), before.cpu_secs()),
            commands: per_sec(
                after.num("total_commands_processed"),
                before.num("total_commands_processed"),
            ),
            publish: per_sec(after.calls("publish"), before.calls("publish")),
            spublish: per_sec(after.calls("spublish"), before.calls("spublish")),
            out_bytes: per_sec(
                after.num("total_net_output_bytes"),
                before.num("total_net_output_bytes"),
            ),
            memory: after.num("used_memory"),
            client_memory: after.num("mem_clients_normal"),
            clients: after.num("connected_clients"),
        }
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        serde_json::json!({
            "cpu_share_of_one_core": r(self.cpu),
            "commands_per_sec": r(self.commands),
            "publish_per_sec": r(self.publish),
            "spublish_per_sec": r(self.spublish),
            "net_output_bytes_per_sec": r(self.out_bytes),
            "used_memory_bytes": self.memory,
            "mem_clients_normal_bytes": self.client_memory,
            "connected_clients": self.clients,
        })
    }
}

/// The `INFO` of every server in `nodes`.
pub(crate) async fn info_all(nodes: &mut [MultiplexedConnection]) -> redis::RedisResult<Vec<Info>> {
    let mut all = Vec::with_capacity(nodes.len());
    for conn in nodes {
        all.push(Info::read(conn).await?);
    }
    Ok(all)
}

/// Every server's rates between two `info_all`.
pub(crate) fn rates(before: &[Info], after: &[Info], secs: f64) -> Vec<Rates> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| Rates::between(b, a, secs))
        .collect()
}

/// This process's CPU seconds (user + system) from `/proc/self/stat`,
/// assuming the usual 100 clock ticks a second; `None` off Linux.
pub(crate) fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after ')'.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// `/proc/loadavg`'s first three fields, or "unknown".
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// This process's CPU over a window, as a share of one core.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcessCpu {
    start: Instant,
    cpu: Option<f64>,
}

impl ProcessCpu {
    pub(crate) fn start() -> Self {
        Self {
            start: Instant::now(),
            cpu: process_cpu_secs(),
        }
    }

    /// CPU seconds / wall seconds since `start`, or NaN when unknown.
    pub(crate) fn share(&self) -> f64 {
        match (self.cpu, process_cpu_secs()) {
            (Some(before), Some(now)) => (now - before) / self.start.elapsed().as_secs_f64(),
            _ => f64::NAN,
        }
    }
}

/// The `p`th percentile of sorted samples (nearest rank), NaN if none.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A master of a cluster (or the one server): its URL, slot ranges and a
/// plain connection to it.
#[derive(Clone)]
pub(crate) struct Master {
    pub(crate) url: String,
    pub(crate) slots: Vec<(u16, u16)>,
    pub(crate) conn: MultiplexedConnection,
}

/// A plain connection to every master of the cluster that `seed` belongs
/// to (from `CLUSTER NODES`), with their URLs and slot ranges; or to the
/// one server at `seed` when it is not a cluster node.
pub(crate) async fn masters(seed: &str) -> Result<Vec<Master>, redis::RedisError> {
    let connect = |url: String| async move {
        redis::Client::open(url.as_str())?
            .get_multiplexed_async_connection()
            .await
    };
    let mut first = connect(seed.to_owned()).await?;
    let nodes: redis::RedisResult<String> = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut first)
        .await;
    let Ok(nodes) = nodes else {
        return Ok(vec![Master {
            url: seed.to_owned(),
            slots: vec![(0, 16383)],
            conn: first,
        }]);
    };
    let mut found = Vec::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
            continue;
        }
        let address = fields[1].split('@').next().unwrap_or_default();
        // Credentials of the seed URL, the master's address.
        let url = match seed.split_once("://").and_then(|(_, r)| r.split_once('@')) {
            Some((userinfo, _)) => format!("redis://{userinfo}@{address}"),
            None => format!("redis://{address}"),
        };
        let slots = fields[8..]
            .iter()
            .filter_map(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                Some((lo.parse().ok()?, hi.parse().ok()?))
            })
            .collect();
        let conn = connect(url.clone()).await?;
        found.push(Master { url, slots, conn });
    }
    found.sort_by_key(|m| m.slots.first().copied());
    Ok(found)
}
