//! [`TestCluster`]: a real Redis Cluster of private `redis-server`s.
//!
//! ## Behavior
//!
//! - `masters` nodes (and `replicas` per master) started with
//!   `--cluster-enabled yes --cluster-node-timeout 1000` on free loopback
//!   ports (each with its bus port, +10000, free too), no persistence, one
//!   temp dir; joined with `redis-cli --cluster create ... --cluster-yes`;
//!   ready when every node says `cluster_state:ok` and knows every node,
//!   and every replica's link to its master is up. Bounded by 20 s.
//! - Every process is SIGKILLed and reaped on drop (or by
//!   [`TestCluster::kill`]).
//! - [`TestCluster::shared`] uses the cluster of `REDIS_CLUSTER_URLS`
//!   when it is set (tests then keep to their own key prefix and kill
//!   nothing), else starts three masters; [`TestCluster::owned`] always
//!   starts its own, for the tests that kill nodes.
//! - Without `redis-server` and `redis-cli` on `PATH`, both skip (`None`,
//!   the reason printed) when the run targets servers of its own
//!   (`REDIS_URL`, `REDIS_CLUSTER_URLS`), and panic naming the options
//!   otherwise.
//! - Blocking: call [`TestCluster::start`] from async code (it uses
//!   `spawn_blocking`).

use std::process::Command;
use std::time::{Duration, Instant};

use super::procs::{self, Proc};

/// A Redis Cluster for one test.
#[derive(Debug)]
pub struct TestCluster {
    /// The nodes this harness started (empty for `REDIS_CLUSTER_URLS`).
    nodes: Vec<Proc>,
    /// `REDIS_CLUSTER_URLS`, when the cluster is someone else's.
    external: Vec<String>,
    masters: usize,
    _dir: Option<tempfile::TempDir>,
}

impl TestCluster {
    /// The cluster of `REDIS_CLUSTER_URLS`, else three masters of our own;
    /// see the module's behaviour.
    ///
    /// # Panics
    ///
    /// When a server does not start or the cluster is not ok in time.
    pub async fn shared() -> Option<TestCluster> {
        if let Ok(list) = std::env::var("REDIS_CLUSTER_URLS")
            && !list.trim().is_empty()
        {
            let external: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect();
            let probe = external[0].clone();
            let masters = tokio::task::spawn_blocking(move || masters_of(&probe).len())
                .await
                .expect("read CLUSTER NODES");
            return Some(TestCluster {
                nodes: Vec::new(),
                external,
                masters,
                _dir: None,
            });
        }
        Self::owned(3, 0).await
    }

    /// Starts and joins a cluster of our own; see the module's behaviour.
    ///
    /// # Panics
    ///
    /// When a server does not start or the cluster is not ok in time.
    pub async fn owned(masters: usize, replicas: usize) -> Option<TestCluster> {
        if !procs::may_start_servers("a cluster test") {
            return None;
        }
        let cluster = tokio::task::spawn_blocking(move || Self::start_blocking(masters, replicas))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        Some(cluster)
    }

    fn start_blocking(masters: usize, replicas: usize) -> TestCluster {
        let dir = tempfile::Builder::new()
            .prefix("fleet-breaker-cluster-")
            .tempdir()
            .expect("temp dir");
        let total = masters * (1 + replicas);
        let ports = procs::free_ports(total);
        let nodes: Vec<Proc> = ports
            .iter()
            .map(|&port| {
                let node_dir = dir.path().join(port.to_string());
                std::fs::create_dir_all(&node_dir).expect("node dir");
                let args: Vec<String> = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--dir",
                ]
                .iter()
                .map(|s| (*s).to_owned())
                .chain([node_dir.display().to_string()])
                .collect();
                Proc::start(dir.path(), &format!("node-{port}"), port, &args)
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let output = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = TestCluster {
            nodes,
            external: Vec::new(),
            masters,
            _dir: Some(dir),
        };
        cluster.wait_ready(total, Duration::from_secs(20));
        cluster
    }

    fn wait_ready(&self, total: usize, bound: Duration) {
        let deadline = Instant::now() + bound;
        loop {
            let ok = self.nodes.iter().all(|node| {
                let url = procs::local(node.port);
                let info = procs::text(&url, &["CLUSTER", "INFO"]);
                let replication = procs::text(&url, &["INFO", "replication"]);
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{total}"))
                    && (replication.contains("role:master")
                        || replication.contains("master_link_status:up"))
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster was not ok within {bound:?}: {}",
                procs::text(&procs::local(self.nodes[0].port), &["CLUSTER", "INFO"])
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The URL of every node started (masters first), or `REDIS_CLUSTER_URLS`.
    pub fn urls(&self) -> Vec<String> {
        if !self.external.is_empty() {
            return self.external.clone();
        }
        self.nodes
            .iter()
            .map(|node| procs::local(node.port))
            .collect()
    }

    /// Whether this harness started the nodes and may kill them.
    pub fn is_owned(&self) -> bool {
        self.external.is_empty()
    }

    /// The URL of a running node.
    fn any_node(&self) -> String {
        if let Some(url) = self.external.first() {
            return url.clone();
        }
        let port = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running node")
            .port;
        procs::local(port)
    }

    /// The hash slot of `key`.
    pub fn slot(&self, key: &str) -> u16 {
        match procs::command(&self.any_node(), &["CLUSTER", "KEYSLOT", key]) {
            Ok(redis::Value::Int(slot)) => u16::try_from(slot).expect("slot"),
            other => panic!("CLUSTER KEYSLOT {key}: {other:?}"),
        }
    }

    /// The URL of the master serving `slot` now (`CLUSTER NODES` of a
    /// running node).
    pub fn master_of(&self, slot: u16) -> String {
        self.try_master_of(slot).unwrap_or_else(|| {
            let nodes = procs::text(&self.any_node(), &["CLUSTER", "NODES"]);
            panic!("no master serves slot {slot}:\n{nodes}")
        })
    }

    /// The URL of the healthy master serving `slot`, if any.
    pub fn try_master_of(&self, slot: u16) -> Option<String> {
        masters_of(&self.any_node())
            .into_iter()
            .find(|(_, ranges)| ranges.iter().any(|range| range.contains(&slot)))
            .map(|(url, _)| url)
    }

    /// The URLs of the masters the cluster was created with (of an
    /// external cluster: its masters now).
    pub fn initial_masters(&self) -> Vec<String> {
        if !self.is_owned() {
            return masters_of(&self.any_node())
                .into_iter()
                .map(|(url, _)| url)
                .collect();
        }
        self.nodes[..self.masters]
            .iter()
            .map(|n| procs::local(n.port))
            .collect()
    }

    /// Agent ids `agent-N`, `per_master` of them on each master, so a test
    /// spreads its agents over the whole cluster.
    pub fn agents_on_every_master(&self, per_master: usize) -> Vec<String> {
        let masters = self.initial_masters();
        let mut counts = vec![0usize; masters.len()];
        let mut agents = Vec::new();
        for n in 0.. {
            if counts.iter().all(|&c| c >= per_master) {
                break;
            }
            let agent = format!("agent-{n}");
            let owner = self.master_of(self.slot(&agent));
            let index = masters.iter().position(|m| *m == owner).expect("a master");
            if counts[index] < per_master {
                counts[index] += 1;
                agents.push(agent);
            }
        }
        agents
    }

    /// SIGKILLs the node at `url`.
    ///
    /// # Panics
    ///
    /// On a cluster this harness did not start.
    pub fn kill(&mut self, url: &str) {
        assert!(self.is_owned(), "TestCluster::kill on REDIS_CLUSTER_URLS");
        if let Some(node) = self.nodes.iter_mut().find(|n| procs::local(n.port) == url) {
            node.kill();
        }
    }

    /// Waits until every running node says `cluster_state:ok` and `slot` is
    /// served by a master other than `old`.
    pub async fn wait_failover(&self, slot: u16, old: &str, bound: Duration) -> String {
        let deadline = Instant::now() + bound;
        loop {
            let states_ok = self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                procs::text(&procs::local(n.port), &["CLUSTER", "INFO"])
                    .contains("cluster_state:ok")
            });
            if states_ok
                && let Some(owner) = self.try_master_of(slot)
                && owner != old
            {
                return owner;
            }
            assert!(
                Instant::now() < deadline,
                "no failover of slot {slot} within {bound:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The healthy masters that the node at `url` knows (`CLUSTER NODES`), as
/// URLs with `url`'s credentials, with their slot ranges.
fn masters_of(url: &str) -> Vec<(String, Vec<std::ops::RangeInclusive<u16>>)> {
    let nodes = procs::text(url, &["CLUSTER", "NODES"]);
    let userinfo = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(userinfo, _)| format!("{userinfo}@"))
        .unwrap_or_default();
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                return None;
            }
            let address = fields[1].split('@').next()?;
            let ranges = fields[8..]
                .iter()
                .filter_map(|range| {
                    let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                    Some(lo.parse::<u16>().ok()?..=hi.parse::<u16>().ok()?)
                })
                .collect();
            Some((format!("redis://{userinfo}{address}"), ranges))
        })
        .collect()
}
