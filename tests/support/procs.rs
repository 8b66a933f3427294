//! Plain `redis-server` processes for the multi-server harnesses (cluster
//! and sentinel): spawned with any arguments on a chosen loopback port,
//! killed and reaped on drop.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `redis-server` child (a node, a replica or a sentinel).
#[derive(Debug)]
pub struct Proc {
    pub port: u16,
    child: Option<Child>,
}

impl Proc {
    /// Runs `redis-server ARGS... --port PORT` with its log in `dir`, and
    /// waits (at most 5 s) until it answers `PING`.
    ///
    /// # Panics
    ///
    /// When it cannot be spawned or does not answer; the log is quoted.
    pub fn start(dir: &Path, name: &str, port: u16, args: &[String]) -> Proc {
        let log_path = dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).expect("create a log file");
        let child = Command::new("redis-server")
            .args(args)
            .arg("--port")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-server: {e}"));
        let proc = Proc {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !pings(&local(port)) {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("redis-server {name} on port {port} did not answer PING; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        proc
    }

    /// SIGKILL and reap; nothing when already killed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `redis://127.0.0.1:PORT`.
pub fn local(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// Whether the server at `url` answers `PING`.
pub fn pings(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(250)) else {
        return false;
    };
    let _ = con.set_read_timeout(Some(Duration::from_millis(250)));
    matches!(
        redis::cmd("PING").query::<String>(&mut con).as_deref(),
        Ok("PONG")
    )
}

/// A synchronous command on the server at `url`, bounded by 1 s.
pub fn command(url: &str, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_connection_with_timeout(Duration::from_secs(1))?;
    con.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(&mut con)
}

/// A text reply of a command on the server at `url`, or "" on any error.
pub fn text(url: &str, args: &[&str]) -> String {
    match command(url, args) {
        Ok(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(redis::Value::VerbatimString { text, .. }) => text,
        Ok(redis::Value::SimpleString(s)) => s,
        _ => String::new(),
    }
}

/// `count` distinct loopback ports, each free with `port + 10000` (a
/// cluster node's bus port) free too; never 6379.
pub fn free_ports(count: usize) -> Vec<u16> {
    let mut ports = Vec::with_capacity(count);
    while ports.len() < count {
        let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let seed = probe.local_addr().expect("local addr").port();
        drop(probe);
        // Map into 20000..50000 so that the bus port stays below 65536.
        let port = 20_000 + seed % 30_000;
        if port == 6379 || ports.contains(&port) || ports.contains(&(port + 10_000)) {
            continue;
        }
        let free = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
        if free(port) && free(port + 10_000) {
            ports.push(port);
        }
    }
    ports
}

/// Whether `name` is an executable on `PATH`.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// Whether this test may start its own `redis-server`s (and `redis-cli`):
/// `true` when both are on `PATH`; `false`, with the reason printed, when
/// they are not but the run targets Redis servers of its own (`REDIS_URL`
/// or `REDIS_CLUSTER_URLS`), so the test should skip.
///
/// # Panics
///
/// When they are missing and nothing else was given, naming the options.
pub fn may_start_servers(what: &str) -> bool {
    if on_path("redis-server") && on_path("redis-cli") {
        return true;
    }
    let external = ["REDIS_URL", "REDIS_CLUSTER_URLS"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()));
    if external {
        eprintln!(
            "skipped: {what} needs redis-server and redis-cli on PATH to start its own servers"
        );
        return false;
    }
    panic!(
        "{what} needs redis-server and redis-cli on PATH (Debian/Ubuntu: \
         `apt-get install redis-server`; `scripts/test` does this when run as root)"
    );
}
