//! A `redis-server` child process on a free loopback port, owned by one
//! [`TestRedis`](super::TestRedis).
//!
//! ## Behavior
//!
//! - The port comes from binding `127.0.0.1:0`, reading the port and dropping
//!   the listener; if another process takes it before the server binds, the
//!   server exits with "Address already in use" and a new port is tried.
//!   Port 6379, the machine's shared Redis, is never used.
//! - The server persists nothing (`--save '' --appendonly no`), runs in the
//!   foreground (`--daemonize no`) with its own temporary `--dir`, and logs to
//!   `redis.log` there; a failure to start quotes that log.
//! - Ready means it answers `PING` and `INFO server` reports the process id of
//!   the child this harness spawned, so a server that someone else started on
//!   the same port is never mistaken for ours. Bounded by [`READY_TIMEOUT`].
//! - [`LocalServer::kill`] sends SIGKILL and reaps the child; drop does the
//!   same. Everything here blocks: the async side runs it on
//!   `tokio::task::spawn_blocking`.

use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting server has to answer `PING`.
pub(super) const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How many fresh ports to try when the chosen one is taken meanwhile.
const PORT_ATTEMPTS: usize = 10;
/// The machine's shared Redis: never started on, never connected to.
const SHARED_PORT: u16 = 6379;
/// Between two readiness checks.
const POLL: Duration = Duration::from_millis(10);

/// A `redis-server` process that this harness started and will stop.
#[derive(Debug)]
pub(super) struct LocalServer {
    binary: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Arguments after the defaults (kept for a restart).
    extra: Vec<String>,
    /// `None` after [`LocalServer::kill`].
    child: Option<Child>,
}

/// Why one attempt to start a server failed.
enum StartError {
    /// Another process holds the port; try another (or wait).
    PortTaken,
    /// Anything else, with a message for the panic.
    Other(String),
}

/// The first executable `redis-server` on `PATH`.
pub(super) fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = path.metadata() else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// A loopback port that was free a moment ago, never 6379.
fn free_port() -> Result<u16, String> {
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| format!("cannot bind 127.0.0.1:0 to find a free port: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound port: {e}"))?
            .port();
        drop(listener);
        if port != SHARED_PORT {
            return Ok(port);
        }
    }
}

impl LocalServer {
    /// Starts `binary` on a free port and waits until it answers.
    ///
    /// # Errors
    ///
    /// A message with the server's log when it does not come up.
    pub(super) fn start(binary: PathBuf, extra: Vec<String>) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("fleet-breaker-redis-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir for redis-server: {e}"))?;
        let mut server = Self {
            binary,
            dir,
            port: 0,
            extra,
            child: None,
        };
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port()?;
            match server.spawn_ready() {
                Ok(child) => {
                    server.child = Some(child);
                    return Ok(server);
                }
                Err(StartError::PortTaken) => continue,
                Err(StartError::Other(message)) => return Err(message),
            }
        }
        Err(format!(
            "redis-server found every one of {PORT_ATTEMPTS} free ports taken by the time it bound"
        ))
    }

    pub(super) fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, `None` while killed.
    pub(super) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap; the data is gone, the port is kept for
    /// [`LocalServer::restart`]. Does nothing when already killed.
    pub(super) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Fails only if the child has already exited; `wait` reaps either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs, then starts an empty one on the same
    /// port, waiting (within [`READY_TIMEOUT`]) for the port to be free.
    ///
    /// # Errors
    ///
    /// A message when the port stays taken or the server does not come up.
    pub(super) fn restart(&mut self) -> Result<(), String> {
        self.kill();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn_ready() {
                Ok(child) => {
                    self.child = Some(child);
                    return Ok(());
                }
                Err(StartError::PortTaken) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(StartError::PortTaken) => {
                    return Err(format!(
                        "cannot restart redis-server: port {} was taken by another process \
                         after the kill and stayed taken for {READY_TIMEOUT:?}",
                        self.port
                    ));
                }
                Err(StartError::Other(message)) => return Err(message),
            }
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_else(|e| format!("(no log at {}: {e})", self.log_path().display()))
    }

    /// One attempt on `self.port`: spawn, then wait until it answers.
    fn spawn_ready(&self) -> Result<Child, StartError> {
        let log = open_log(&self.log_path()).map_err(StartError::Other)?;
        let log_err = log
            .try_clone()
            .map_err(|e| StartError::Other(format!("cannot clone the log file handle: {e}")))?;
        let mut child = Command::new(&self.binary)
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| StartError::Other(format!("cannot run {}: {e}", self.binary.display())))?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let log = self.log();
                    return Err(if log.contains("Address already in use") {
                        StartError::PortTaken
                    } else {
                        StartError::Other(format!(
                            "redis-server on port {} exited ({status}) before answering PING; \
                             its log:\n{log}",
                            self.port
                        ))
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(StartError::Other(format!(
                        "cannot poll the redis-server child: {e}"
                    )));
                }
            }
            if answers_as(self.port, child.id()) {
                return Ok(child);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartError::Other(format!(
                    "redis-server on port {} did not answer PING within {READY_TIMEOUT:?}; \
                     its log:\n{}",
                    self.port,
                    self.log()
                )));
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn open_log(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// Whether the server on `port` answers `PING` and is the process `pid`.
fn answers_as(port: u16, pid: u32) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return false;
    };
    let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(250)) else {
        return false;
    };
    if con
        .set_read_timeout(Some(Duration::from_millis(250)))
        .is_err()
    {
        return false;
    }
    let pong: Result<String, _> = redis::cmd("PING").query(&mut con);
    if !matches!(pong.as_deref(), Ok("PONG")) {
        return false;
    }
    let info: Result<String, _> = redis::cmd("INFO").arg("server").query(&mut con);
    let expected = format!("process_id:{pid}");
    info.is_ok_and(|info| info.lines().any(|line| line.trim() == expected))
}
