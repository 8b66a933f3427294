//! [`TestSentinel`]: one master, one replica and three sentinels, private
//! `redis-server`s on free loopback ports.
//!
//! ## Behavior
//!
//! - The sentinels monitor the master as [`MASTER_NAME`] with quorum 2,
//!   `down-after-milliseconds 1000` and `failover-timeout 5000`, so a
//!   killed master is replaced within a few seconds.
//! - Ready when the replica's link is up and every sentinel knows the
//!   replica and the two other sentinels (their hello messages take up to
//!   2 s). Bounded by 20 s.
//! - Every process is SIGKILLed and reaped on drop.
//! - Without `redis-server` on `PATH`, [`TestSentinel::start`] skips or
//!   panics as [`procs::may_start_servers`] says.

use std::time::{Duration, Instant};

use super::procs::{self, Proc};

/// The name the sentinels monitor the master under.
pub const MASTER_NAME: &str = "fleet-master";

/// A master, a replica and three sentinels for one test.
#[derive(Debug)]
pub struct TestSentinel {
    servers: Vec<Proc>,
    sentinels: Vec<Proc>,
    _dir: tempfile::TempDir,
}

impl TestSentinel {
    /// Starts everything and waits until the sentinels are ready; `None`
    /// (the reason printed) where no `redis-server` may be started, see
    /// [`procs::may_start_servers`].
    pub async fn start() -> Option<TestSentinel> {
        if !procs::may_start_servers("a sentinel test") {
            return None;
        }
        let setup = tokio::task::spawn_blocking(Self::start_blocking)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        Some(setup)
    }

    fn start_blocking() -> TestSentinel {
        let dir = tempfile::Builder::new()
            .prefix("fleet-breaker-sentinel-")
            .tempdir()
            .expect("temp dir");
        let ports = procs::free_ports(5);
        let base = |extra: &[String]| -> Vec<String> {
            [
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
            .chain([dir.path().display().to_string()])
            .chain(extra.iter().cloned())
            .collect()
        };
        let master = Proc::start(dir.path(), "master", ports[0], &base(&[]));
        let replica = Proc::start(
            dir.path(),
            "replica",
            ports[1],
            &base(&[
                "--replicaof".to_owned(),
                "127.0.0.1".to_owned(),
                ports[0].to_string(),
            ]),
        );
        let sentinels = ports[2..]
            .iter()
            .map(|&port| {
                let conf = dir.path().join(format!("sentinel-{port}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "bind 127.0.0.1\ndir {dir}\n\
                         sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
                         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                         sentinel failover-timeout {MASTER_NAME} 5000\n\
                         sentinel parallel-syncs {MASTER_NAME} 1\n",
                        dir = dir.path().display(),
                        master = ports[0],
                    ),
                )
                .expect("write sentinel.conf");
                Proc::start(
                    dir.path(),
                    &format!("sentinel-{port}"),
                    port,
                    &[conf.display().to_string(), "--sentinel".to_owned()],
                )
            })
            .collect();
        let setup = TestSentinel {
            servers: vec![master, replica],
            sentinels,
            _dir: dir,
        };
        setup.wait_ready(Duration::from_secs(20));
        setup
    }

    fn wait_ready(&self, bound: Duration) {
        let deadline = Instant::now() + bound;
        loop {
            let replica_up = procs::text(
                &procs::local(self.servers[1].port),
                &["INFO", "replication"],
            )
            .contains("master_link_status:up");
            let sentinels_ready = self.sentinels.iter().all(|s| {
                let known = |what: &str| match procs::command(
                    &procs::local(s.port),
                    &["SENTINEL", what, MASTER_NAME],
                ) {
                    Ok(redis::Value::Array(items)) => items.len(),
                    _ => 0,
                };
                known("REPLICAS") >= 1 && known("SENTINELS") >= 2
            });
            if replica_up && sentinels_ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the sentinels were not ready within {bound:?} (replica up: {replica_up})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `redis://127.0.0.1:PORT` of the three sentinels.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port))
            .collect()
    }

    /// The master's port as the first sentinel names it now.
    pub fn master_port(&self) -> Option<u16> {
        let reply = procs::command(
            &procs::local(self.sentinels[0].port),
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME],
        )
        .ok()?;
        let redis::Value::Array(items) = reply else {
            return None;
        };
        match items.get(1) {
            Some(redis::Value::BulkString(port)) => std::str::from_utf8(port).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// The port the master was started on.
    pub fn initial_master(&self) -> u16 {
        self.servers[0].port
    }

    /// The port the replica was started on.
    pub fn initial_replica(&self) -> u16 {
        self.servers[1].port
    }

    /// SIGKILLs the server (master or replica) on `port`.
    pub fn kill(&mut self, port: u16) {
        if let Some(server) = self.servers.iter_mut().find(|s| s.port == port) {
            server.kill();
        }
    }
}
