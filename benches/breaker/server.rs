//! The Redis the bench runs against, its clean-up, and the bare `EVALSHA`
//! round trip that the uncached decisions are compared with.

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleet_breaker::{AgentId, CircuitBreaker, RedisStore};
use redis::aio::MultiplexedConnection;

/// A `redis-server` this bench started; killed on drop.
pub(crate) struct PrivateRedis {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `REDIS_URL`, or a private server on a free port (never 6379 implicitly).
pub(crate) fn redis() -> (String, Option<PrivateRedis>) {
    if let Ok(url) = std::env::var("REDIS_URL") {
        return (url, None);
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free loopback port")
        .port();
    let dir = tempfile::tempdir().expect("no temporary directory");
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("these benches need Redis: set REDIS_URL, or put redis-server on PATH");
    let server = PrivateRedis { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen on port {port} within 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (format!("redis://127.0.0.1:{port}"), Some(server))
}

/// A trivial script (`return 1`, no keys) called by `EVALSHA` on the kind
/// of connection the store sends its scripts down: a multiplexed connection
/// cloned out of the store's deadpool pool, used with no pool check.
#[derive(Clone)]
pub(crate) struct EvalSha {
    conn: MultiplexedConnection,
    script: redis::Script,
}

impl EvalSha {
    /// Takes a connection from `store`'s pool and loads the script, so that
    /// every call in the loop is one `EVALSHA` (no `NOSCRIPT` + `SCRIPT LOAD`).
    pub(crate) async fn new(store: &RedisStore) -> Self {
        let pooled = store
            .pool()
            .expect("a single-server store has a pool")
            .get()
            .await
            .expect("a connection from the store's pool");
        let mut this = Self {
            conn: MultiplexedConnection::clone(&pooled),
            script: redis::Script::new("return 1"),
        };
        let one: i64 = this.call().await;
        assert_eq!(one, 1, "the trivial script returns 1");
        this
    }

    async fn call(&mut self) -> i64 {
        self.script
            .invoke_async(&mut self.conn)
            .await
            .expect("EVALSHA of the trivial script")
    }

    /// One uncached decision (`breaker.acquire(agent)` on a forced-open
    /// circuit with no cache: one script) and one bare `EVALSHA`, alternated
    /// `n` times each; the median of each. Two separate benches run minutes
    /// apart, and the machine's drift between them moved their ratio from
    /// 1.4x to 2.1x; alternating call by call gives both medians the same
    /// moments.
    pub(crate) async fn paired(
        mut self,
        breaker: &CircuitBreaker,
        agent: &AgentId,
        n: usize,
    ) -> (Duration, Duration) {
        let (mut decisions, mut trips) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let start = Instant::now();
            black_box(self.call().await);
            trips.push(start.elapsed());
            let start = Instant::now();
            let rejected = breaker.acquire(black_box(agent)).await.err();
            decisions.push(start.elapsed());
            black_box(rejected.expect("the circuit is forced open"));
        }
        (median(decisions), median(trips))
    }

    /// Redis's own time for one uncached decision (its `FCALL`) and for
    /// one bare `EVALSHA`, in µs (`INFO commandstats`, after `CONFIG RESETSTAT`):
    /// `n` of each, run apart. The paired medians include the client and
    /// the loopback; these split the gap into the server's part and the
    /// rest. Resetting the statistics is for a server the bench started.
    pub(crate) async fn server_times(
        mut self,
        url: &str,
        breaker: &CircuitBreaker,
        agent: &AgentId,
        n: usize,
    ) -> redis::RedisResult<(f64, f64)> {
        let mut admin = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .exec_async(&mut admin)
            .await?;
        for _ in 0..n {
            let rejected = breaker.acquire(agent).await.err();
            black_box(rejected.expect("the circuit is forced open"));
        }
        let decision = script_usec_per_call(&mut admin).await?;
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .exec_async(&mut admin)
            .await?;
        for _ in 0..n {
            black_box(self.call().await);
        }
        Ok((decision, script_usec_per_call(&mut admin).await?))
    }

    /// `iters` round trips in one tight loop; the loop's time.
    pub(crate) async fn round_trips(mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(self.call().await);
        }
        start.elapsed()
    }
}

/// Redis's µs per script call, `EVALSHA` and `FCALL` together, by `INFO
/// commandstats` (0 before any call): the store calls its library's
/// functions, and the trivial script is called by `EVALSHA`.
async fn script_usec_per_call(conn: &mut MultiplexedConnection) -> redis::RedisResult<f64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    let (mut calls, mut usec) = (0.0, 0.0);
    for stats in info.lines().filter_map(|line| {
        line.strip_prefix("cmdstat_evalsha:")
            .or_else(|| line.strip_prefix("cmdstat_fcall:"))
    }) {
        let field = |name: &str| -> f64 {
            stats
                .split(',')
                .find_map(|field| field.strip_prefix(name))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0.0)
        };
        calls += field("calls=");
        usec += field("usec=");
    }
    Ok(if calls > 0.0 { usec / calls } else { 0.0 })
}

/// The median of `times` (zero when empty).
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Deletes the keys under `prefix` (SCAN MATCH + UNLINK).
pub(crate) async fn clean_up(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
