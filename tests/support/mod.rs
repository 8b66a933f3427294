//! Shared support of the integration tests: a Redis to test against
//! ([`TestRedis`], DESIGN.md section 7), per-test key prefixes, bounded
//! waits and tracing output.
//!
//! Each test crate includes it with `mod support;` (or
//! `#[path = "../support/mod.rs"] mod support;` from a `tests/<area>/main.rs`),
//! so every crate compiles all of it and uses only part: hence the
//! `dead_code` allowance, and `unreachable_pub` because `pub` here means
//! "for the tests", not an exported API.
#![allow(dead_code, unreachable_pub)]

mod admin;
pub mod alone;
pub mod cluster;
#[cfg(feature = "testcontainers")]
mod container;
pub mod corrupt;
pub mod fleet;
pub mod procs;
pub mod proxy;
mod redis_server;
pub mod sentinel;
mod wait;

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use redis_server::LocalServer;
// Unused in the test crates that wait for nothing.
#[allow(unused_imports)]
pub use wait::{poll_blocking, poll_within, wait_for, wait_until};

/// What [`TestRedis::start`] says when it finds no Redis at all.
const NO_REDIS: &str = "no Redis for the tests; do one of:\n  \
    1. set REDIS_URL to a Redis the tests may write to (e.g. redis://127.0.0.1:6390), or\n  \
    2. put `redis-server` on PATH (Debian/Ubuntu: `apt-get install redis-server`; \
       `scripts/test` does this when run as root), or\n  \
    3. run with `--features testcontainers` on a machine with a Docker engine";

/// A Redis server for one test or one suite.
///
/// ## Behavior
///
/// - [`TestRedis::start`] picks, in order: `REDIS_URL` if set and not empty
///   (used as is, shared with whoever else uses it); else a `redis-server`
///   from `PATH`, started for this value alone on a free loopback port
///   (never 6379) with an empty temp dir and no persistence; else, with the
///   cargo feature `testcontainers`, a `redis:7` container; else it panics
///   with a message naming these three options.
/// - Only the `redis-server` is *owned*: [`TestRedis::kill`] and
///   [`TestRedis::restart`] panic on the other two, so check
///   [`TestRedis::is_owned`] first and skip with a printed reason.
/// - Dropping it kills and reaps the server (or removes the container).
///   Keep it in a local or a struct, not a `static`: statics are never
///   dropped, and the server would outlive the test binary.
/// - Tests that share a `REDIS_URL` run side by side: put every key under
///   [`unique_prefix`], and avoid [`TestRedis::flushall`] there.
pub struct TestRedis {
    url: String,
    port: u16,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    /// `REDIS_URL`: someone else's server.
    External,
    /// A `redis-server` child of this process.
    Local(LocalServer),
    /// A testcontainers container, removed on drop (boxed: it is large).
    #[cfg(feature = "testcontainers")]
    Container(Box<testcontainers::ContainerAsync<testcontainers_modules::redis::Redis>>),
}

impl std::fmt::Debug for TestRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRedis")
            .field("url", &redact(&self.url))
            .field("port", &self.port)
            .field("backend", &self.backend)
            .finish()
    }
}

impl TestRedis {
    /// A `redis-server` of the test's own started with `args` after the
    /// usual ones (`--rename-command FCALL ""` to stand for an older Redis,
    /// say); `None` (the test skips) where `REDIS_URL` names the server or
    /// no binary is found.
    pub async fn start_with_args(args: &[&str]) -> Option<TestRedis> {
        if std::env::var("REDIS_URL").is_ok_and(|u| !u.trim().is_empty()) {
            eprintln!("skipped: REDIS_URL is set, and this test starts a server of its own");
            return None;
        }
        let binary = redis_server::find_binary()?;
        Some(Self::local(binary, args.iter().map(|a| (*a).to_owned()).collect()).await)
    }

    async fn local(binary: std::path::PathBuf, args: Vec<String>) -> TestRedis {
        let shown = binary.display().to_string();
        let server = tokio::task::spawn_blocking(move || LocalServer::start(binary, args))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            .unwrap_or_else(|e| panic!("cannot start {shown} for the tests: {e}"));
        let port = server.port();
        TestRedis {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            backend: Backend::Local(server),
        }
    }

    /// A Redis that answers `PING`; see the type's behaviour list for where
    /// it comes from.
    ///
    /// # Panics
    ///
    /// When no option works, or the chosen one fails to start or answer.
    pub async fn start() -> TestRedis {
        if let Some(url) = std::env::var("REDIS_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
        {
            return Self::external(url).await;
        }
        if let Some(binary) = redis_server::find_binary() {
            return Self::local(binary, Vec::new()).await;
        }
        #[cfg(feature = "testcontainers")]
        return Self::container().await;
        #[cfg(not(feature = "testcontainers"))]
        panic!("{NO_REDIS}");
    }

    #[cfg(feature = "testcontainers")]
    async fn container() -> TestRedis {
        let started = container::start()
            .await
            .unwrap_or_else(|e| panic!("{e}\n\n{NO_REDIS}"));
        admin::ping(&started.url).await.unwrap_or_else(|e| {
            panic!(
                "the Redis container at {} does not answer PING: {e}",
                started.url
            )
        });
        TestRedis {
            url: started.url,
            port: started.port,
            backend: Backend::Container(Box::new(started.container)),
        }
    }

    async fn external(url: String) -> TestRedis {
        let shown = redact(&url);
        let client = redis::Client::open(url.as_str())
            .unwrap_or_else(|e| panic!("REDIS_URL={shown} is not a Redis URL: {e}"));
        let port = match client.get_connection_info().addr() {
            redis::ConnectionAddr::Tcp(_, port) => *port,
            redis::ConnectionAddr::TcpTls { port, .. } => *port,
            _ => 0,
        };
        admin::ping(&url).await.unwrap_or_else(|e| {
            panic!("REDIS_URL={shown} does not answer PING: {e}; unset it to let the tests start their own redis-server")
        });
        TestRedis {
            url,
            port,
            backend: Backend::External,
        }
    }

    /// The URL to give the code under test: `redis://127.0.0.1:PORT` for an
    /// owned server, `REDIS_URL` verbatim otherwise.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The TCP port (0 for a `REDIS_URL` on a unix socket).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether this harness started the server and may kill and restart it.
    pub fn is_owned(&self) -> bool {
        matches!(self.backend, Backend::Local(_))
    }

    /// The server's process id while it runs, for an owned server.
    pub fn pid(&self) -> Option<u32> {
        match &self.backend {
            Backend::Local(server) => server.pid(),
            _ => None,
        }
    }

    /// A plain client connection, for setting up and asserting on raw keys.
    ///
    /// It has no connection or response timeout, so it works under
    /// `tokio::time::pause()`; bound your waits with [`wait_until`].
    ///
    /// # Panics
    ///
    /// When the server does not accept the connection (e.g. while killed).
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        admin::connect(&self.url).await.unwrap_or_else(|e| {
            panic!(
                "cannot connect to the test Redis at {}: {e}",
                redact(&self.url)
            )
        })
    }

    /// SIGKILLs the server and reaps it: the data is lost, the port kept for
    /// [`TestRedis::restart`]. Killing a killed server does nothing.
    ///
    /// # Panics
    ///
    /// On a server this harness does not own (see [`TestRedis::is_owned`]).
    pub fn kill(&mut self) {
        match &mut self.backend {
            Backend::Local(server) => server.kill(),
            other => panic!("TestRedis::kill: {}", not_owned(other)),
        }
    }

    /// Starts an empty server on the same port (killing the running one
    /// first, if any) and waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// On a server this harness does not own, or when the port was taken
    /// meanwhile or the server does not come up within 5 s.
    pub async fn restart(&mut self) {
        let mut server = match std::mem::replace(&mut self.backend, Backend::External) {
            Backend::Local(server) => server,
            other => {
                let message = not_owned(&other);
                self.backend = other;
                panic!("TestRedis::restart: {message}");
            }
        };
        let server = tokio::task::spawn_blocking(move || {
            server
                .restart()
                .unwrap_or_else(|e| panic!("TestRedis::restart: {e}"));
            server
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        self.backend = Backend::Local(server);
    }

    /// `FLUSHALL`: every key of every database. On a shared `REDIS_URL` this
    /// also wipes other tests' keys; prefer a fresh [`unique_prefix`].
    pub async fn flushall(&self) {
        admin::run(&self.url, &["FLUSHALL"]).await;
    }

    /// `SCRIPT FLUSH`: the next `EVALSHA` of every script gets `NOSCRIPT`.
    pub async fn script_flush(&self) {
        admin::run(&self.url, &["SCRIPT", "FLUSH"]).await;
    }

    /// `FUNCTION FLUSH`: deletes every function library.
    pub async fn function_flush(&self) {
        admin::run(&self.url, &["FUNCTION", "FLUSH"]).await;
    }

    /// `CONFIG RESETSTAT`: zeroes the counters that
    /// [`TestRedis::command_stats`] reads (server-wide).
    pub async fn reset_stats(&self) {
        admin::run(&self.url, &["CONFIG", "RESETSTAT"]).await;
    }

    /// `INFO commandstats` as command name (lower case, subcommands as
    /// `script|flush`) to number of calls since start or the last
    /// [`TestRedis::reset_stats`]. Commands never called are absent.
    pub async fn command_stats(&self) -> std::collections::HashMap<String, u64> {
        admin::command_stats(&self.url).await
    }
}

fn not_owned(backend: &Backend) -> String {
    let what = match backend {
        Backend::External => "the REDIS_URL server",
        #[cfg(feature = "testcontainers")]
        Backend::Container(_) => "a testcontainers container",
        Backend::Local(_) => "this server",
    };
    format!(
        "{what} is not a server this harness may kill or restart; \
         check `is_owned()` first and skip the test with a printed reason"
    )
}

/// `url` with its password, if any, shown as `set` (STYLE.md item 5).
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user = rest[..at].split(':').next().unwrap_or("");
    if !rest[..at].contains(':') {
        return url.to_owned();
    }
    format!("{scheme}://{user}:set{}", &rest[at..])
}

/// A key prefix of its own for one test: `fbt-<name>-<pid>-<n>-<random>`,
/// unique across tests, test binaries and runs that share one Redis. Only
/// ASCII letters, digits, `-` and `_` (no braces, which would break the
/// agents' hash tags).
pub fn unique_prefix(test_name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name: String = test_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("fbt-{name}-{}-{n}-{}", std::process::id(), &random[..8])
}

/// Installs a tracing subscriber that writes through the test harness's
/// captured output (shown for failing tests, or all with `--nocapture`).
/// The filter comes from `RUST_LOG`, default `fleet_breaker=debug`. Calling
/// it again, from any test, does nothing.
pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("fleet_breaker=debug"));
        // Another subscriber may already be global (set by a test itself): keep it.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}
