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
//! - Blocking: call [`TestCluster::start`] from async code (it uses
//!   `spawn_blocking`).

use std::process::Command;
use std::time::{Duration, Instant};

use super::procs::{self, Proc};

/// A Redis Cluster for one test.
#[derive(Debug)]
pub struct TestCluster {
    nodes: Vec<Proc>,
    masters: usize,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts and joins the cluster; see the module's behaviour.
    ///
    /// # Panics
    ///
    /// When a server does not start or the cluster is not ok in time.
    pub async fn start(masters: usize, replicas: usize) -> TestCluster {
        tokio::task::spawn_blocking(move || Self::start_blocking(masters, replicas))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
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
            masters,
            _dir: dir,
        };
        cluster.wait_ready(total, Duration::from_secs(20));
        cluster
    }

    fn wait_ready(&self, total: usize, bound: Duration) {
        let deadline = Instant::now() + bound;
        loop {
            let ok = self.nodes.iter().all(|node| {
                let info = procs::text(node.port, &["CLUSTER", "INFO"]);
                let replication = procs::text(node.port, &["INFO", "replication"]);
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
                procs::text(self.nodes[0].port, &["CLUSTER", "INFO"])
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis://127.0.0.1:PORT` of every node started (masters first).
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}", node.port))
            .collect()
    }

    /// The port of a running node.
    fn any_port(&self) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running node")
            .port
    }

    /// The hash slot of `key`.
    pub fn slot(&self, key: &str) -> u16 {
        match procs::command(self.any_port(), &["CLUSTER", "KEYSLOT", key]) {
            Ok(redis::Value::Int(slot)) => u16::try_from(slot).expect("slot"),
            other => panic!("CLUSTER KEYSLOT {key}: {other:?}"),
        }
    }

    /// The port of the master serving `slot` now (`CLUSTER NODES` of a
    /// running node).
    pub fn master_of(&self, slot: u16) -> u16 {
        self.try_master_of(slot).unwrap_or_else(|| {
            let nodes = procs::text(self.any_port(), &["CLUSTER", "NODES"]);
            panic!("no master serves slot {slot}:\n{nodes}")
        })
    }

    /// The port of the healthy master serving `slot`, if any.
    pub fn try_master_of(&self, slot: u16) -> Option<u16> {
        let nodes = procs::text(self.any_port(), &["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let port: u16 = fields[1]
                .split(['@', ':'])
                .nth(1)
                .and_then(|p| p.parse().ok())
                .expect("node port");
            for range in &fields[8..] {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>())
                    && (lo..=hi).contains(&slot)
                {
                    return Some(port);
                }
            }
        }
        None
    }

    /// The ports of the masters the cluster was created with.
    pub fn initial_masters(&self) -> Vec<u16> {
        self.nodes[..self.masters].iter().map(|n| n.port).collect()
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
            let index = masters.iter().position(|&m| m == owner).expect("a master");
            if counts[index] < per_master {
                counts[index] += 1;
                agents.push(agent);
            }
        }
        agents
    }

    /// SIGKILLs the node on `port`.
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port) {
            node.kill();
        }
    }

    /// Waits until every running node says `cluster_state:ok` and `slot` is
    /// served by a master other than `old`.
    pub async fn wait_failover(&self, slot: u16, old: u16, bound: Duration) -> u16 {
        let deadline = Instant::now() + bound;
        loop {
            let running: Vec<u16> = self
                .nodes
                .iter()
                .filter(|n| n.is_running())
                .map(|n| n.port)
                .collect();
            let states_ok = running
                .iter()
                .all(|&port| procs::text(port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"));
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
