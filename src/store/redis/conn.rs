//! Connections for the scripts: multiplexed connections cloned out of the
//! pool and reused, and the mapping of Redis errors to [`StoreError`].
//!
//! Why not `pool.get()` per operation: deadpool-redis checks every
//! connection it hands out with `UNWATCH` + `PING`, one more round trip and
//! two more commands per operation. A multiplexed connection serves many
//! tasks at once, so the store keeps a few of them ("lanes") and sends each
//! script straight down one: one `EVALSHA` per operation.
//!
//! Where a fresh connection comes from is the [`Source`]: the pool (one
//! Redis), a cluster client (one `ClusterConnection` reaches every node and
//! routes each command to its key's slot, so it needs no pool), or the
//! sentinels (asked for the current master on every new connection, which
//! is how the store follows a failover).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use ::redis::sentinel::SentinelClient;
use ::redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, RedisError, RedisFuture, ServerErrorKind, Value,
};

use super::super::StoreError;
use super::scripts::{Call, LIBRARY, Op};
use crate::agent_id::AgentId;

/// What a script's own validation error starts with (see `lua/lib.lua`).
const INVALID_DATA: &str = "fleet-breaker: invalid data: ";

/// The pool and the connections taken from it.
///
/// ## Behavior
///
/// - Calls are spread round-robin over the lanes; an empty lane takes
///   another lane's connection when one has any, else a fresh one from the
///   pool (checked by deadpool with `UNWATCH` + `PING`).
/// - A connection that fails or times out empties every lane (they share
///   connections), so the next calls take a fresh, checked connection.
/// - A call on a reused connection that turns out to be closed (Redis
///   restarted, the network dropped it) is retried once on a fresh one,
///   within the same timeout. Should the connection have died after Redis ran
///   the script but before the reply came back, the operation is applied
///   twice; a repeated acquire keeps one lease per permit id.
/// - On a cluster or through Sentinel, one task at a time opens a fresh
///   connection (the others wait for it and share it): opening one costs
///   several round trips (the slot map, or the sentinels then the master).
pub(super) struct Lanes {
    source: Source,
    lanes: Box<[Mutex<Option<Conn>>]>,
    next: AtomicUsize,
    timeout: Duration,
    /// Held while a cluster or sentinel connection is being opened.
    connecting: tokio::sync::Mutex<()>,
    /// Whether operations go by `FCALL` (the function library): until the
    /// server or its ACL refuses `FCALL` or `FUNCTION LOAD`; from then on,
    /// for the store's life, by `EVALSHA`.
    functions: AtomicBool,
}

/// Where fresh connections come from.
pub(super) enum Source {
    /// One Redis, through a deadpool pool that checks what it hands out.
    Pool(deadpool_redis::Pool),
    /// A Redis Cluster: one `ClusterConnection` serves every lane.
    Cluster(Box<ClusterClient>),
    /// The master that the sentinels name at the time of connecting.
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
}

/// A connection to one server, or to a whole cluster (whose client sends
/// each command to the node that owns its key and follows `MOVED` and
/// failovers): a lane's, and a webhook delivery task's.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Whether keys of different slots must go in separate commands (no
    /// `MULTI` across them). Used by the webhook deliveries only.
    #[cfg(feature = "service")]
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a ::redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// A connection that sends every command to the master of one slot on a
/// cluster (and to the one server otherwise).
///
/// A script is invoked through it so that both its `EVALSHA` and, after a
/// `NOSCRIPT` (a promoted replica, a flushed node), its `SCRIPT LOAD` go to
/// the node that owns the agent: the cluster client would send a bare
/// `SCRIPT LOAD` to every node, which fails while one is down. The same
/// holds for `FCALL` and its `FUNCTION LOAD`.
struct Routed {
    conn: Conn,
    route: RoutingInfo,
}

impl Routed {
    fn new(conn: Conn, route: &RoutingInfo) -> Self {
        Self {
            conn,
            route: route.clone(),
        }
    }
}

impl ConnectionLike for Routed {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.conn {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => Box::pin(conn.route_command(cmd.clone(), self.route.clone())),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a ::redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.conn.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

impl Lanes {
    /// `count` lanes (at least one) over `source`, every call bounded by `timeout`.
    pub(super) fn new(source: Source, count: usize, timeout: Duration) -> Self {
        Self {
            source,
            lanes: (0..count.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            timeout,
            connecting: tokio::sync::Mutex::new(()),
            functions: AtomicBool::new(true),
        }
    }

    /// The pool of a single Redis; `None` on a cluster or through Sentinel.
    pub(super) fn pool(&self) -> Option<&deadpool_redis::Pool> {
        match &self.source {
            Source::Pool(pool) => Some(pool),
            Source::Cluster(_) | Source::Sentinel(_) => None,
        }
    }

    /// Runs `op` with `call`'s KEYS and ARGV, by `FCALL` of its function
    /// or, where functions cannot be used, by `EVALSHA` of its script;
    /// `agent` names the data in errors.
    pub(super) async fn eval(
        &self,
        op: &Op,
        call: &Call,
        agent: &AgentId,
    ) -> Result<Value, StoreError> {
        let state_key = call.keys.first().map_or(&[][..], |key| key.as_bytes());
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
            state_key,
            SlotAddr::Master,
        )));
        let by_function = if self.functions.load(Ordering::Relaxed) {
            match self.fcall(op, call, &route).await {
                Err(Failure::Redis(e)) if refuses_functions(&e) => {
                    self.no_functions(&e);
                    None
                }
                result => Some(result),
            }
        } else {
            None
        };
        let result = match by_function {
            Some(result) => result,
            None => self.evalsha(&op.script, call, &route).await,
        };
        result.map_err(|e| match e {
            Failure::Redis(e) => store_error(&e, agent),
            Failure::Store(e) => e,
        })
    }

    /// From now on, operations go by `EVALSHA` (said once, at WARN: each
    /// then costs Redis about 40% more time, which an operator can undo).
    fn no_functions(&self, e: &RedisError) {
        if self.functions.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                error = %e,
                "Redis refuses functions: the store runs its scripts by EVALSHA, which costs Redis \
                 about 40% more time per operation; on Redis 7, allow +fcall +function|list \
                 +function|load to this user"
            );
        }
    }

    /// `op`'s function, on the node of the agent's keys: the library is
    /// loaded there first if it is missing (a restart without persistence,
    /// a `FUNCTION FLUSH`, a new node), then called again.
    async fn fcall(&self, op: &Op, call: &Call, route: &RoutingInfo) -> Result<Value, Failure> {
        let mut fcall = ::redis::cmd("FCALL");
        fcall.arg(&op.function).arg(call.keys.len()).arg(&call.keys);
        for arg in call.argv() {
            fcall.arg(arg);
        }
        let fcall = &fcall;
        self.run(move |conn| async move {
            match on_route(conn.clone(), route, fcall).await {
                Err(e) if is_function_missing(&e) => {
                    // Built here only: the command copies the library's code.
                    loaded(on_route(conn.clone(), route, &function_load()).await)?;
                    on_route(conn, route, fcall).await
                }
                other => other,
            }
        })
        .await
    }

    /// `script` by `EVALSHA` (loaded on `NOSCRIPT`), on the node of the
    /// agent's keys.
    async fn evalsha(
        &self,
        script: &::redis::Script,
        call: &Call,
        route: &RoutingInfo,
    ) -> Result<Value, Failure> {
        let mut invocation = script.prepare_invoke();
        for key in &call.keys {
            invocation.key(key);
        }
        for arg in call.argv() {
            invocation.arg(arg);
        }
        let invocation = &invocation;
        self.run(move |conn| async move {
            invocation
                .invoke_async::<Value>(&mut Routed::new(conn, route))
                .await
        })
        .await
    }

    /// Loads the function library unless Redis holds it already, so that
    /// no first `FCALL` pays `Function not found`, the load and a second
    /// `FCALL`: three round trips, which with a distant Redis can exceed the
    /// timeout. Where functions are refused, loads `scripts` into the
    /// script cache instead (`SCRIPT LOAD`, all in one round trip).
    ///
    /// `FUNCTION LIST` first: a read, which a `CLIENT PAUSE WRITE` lets
    /// through, where `FUNCTION LOAD` (a write) would hold this connection,
    /// and every call multiplexed on it, until the pause ends.
    pub(super) async fn load(&self, scripts: &[&::redis::Script]) -> Result<(), StoreError> {
        let mut list = ::redis::cmd("FUNCTION");
        list.arg("LIST").arg("LIBRARYNAME").arg(&LIBRARY.name);
        let list = &list;
        let listed = self
            .run(|mut conn| async move { list.query_async::<Vec<Value>>(&mut conn).await })
            .await;
        let refused = match listed {
            Ok(libraries) if !libraries.is_empty() => return Ok(()),
            Err(Failure::Redis(e)) if is_unknown_command(&e) => Some(e),
            // Absent, or the list refused (an ACL without `FUNCTION LIST`):
            // load it (on every primary of a cluster).
            _ => {
                let load = &function_load();
                let loading = self
                    .run(|mut conn| async move { loaded(load.query_async(&mut conn).await) })
                    .await;
                match loading {
                    Err(Failure::Redis(e)) if refuses_functions(&e) => Some(e),
                    other => return other.map_err(|e| e.of_command("FUNCTION LOAD")),
                }
            }
        };
        if let Some(e) = refused {
            self.no_functions(&e);
        }
        self.run(move |conn| async move {
            let loads = scripts.iter().map(|script| {
                let mut conn = conn.clone();
                async move { script.load_async(&mut conn).await }
            });
            futures::future::try_join_all(loads).await.map(drop)
        })
        .await
        .map_err(|e| match e {
            Failure::Redis(e) => command_error(&e, "SCRIPT LOAD"),
            Failure::Store(e) => e,
        })
    }

    /// Runs a pipeline, in one round trip, on one server (a cluster takes
    /// a pipeline only within one slot).
    pub(super) async fn pipeline<T: ::redis::FromRedisValue>(
        &self,
        pipeline: &::redis::Pipeline,
        what: &str,
    ) -> Result<T, StoreError> {
        self.run(move |mut conn| async move { pipeline.query_async::<T>(&mut conn).await })
            .await
            .map_err(|e| e.of_command(what))
    }

    /// Runs one command.
    pub(super) async fn query<T: ::redis::FromRedisValue>(
        &self,
        cmd: &::redis::Cmd,
        what: &str,
    ) -> Result<T, StoreError> {
        self.run(move |mut conn| async move { cmd.query_async::<T>(&mut conn).await })
            .await
            .map_err(|e| e.of_command(what))
    }

    /// Runs `op` on a lane's connection, bounded by the timeout, retrying
    /// once on a fresh connection if a reused one was closed.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, Failure>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let lane = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let attempt = async {
            let (conn, reused) = self.connection(lane).await?;
            match op(conn).await {
                Ok(value) => Ok(value),
                Err(e) if reused && is_closed(&e) => {
                    self.clear(lane);
                    let (conn, _) = self.connection(lane).await?;
                    op(conn).await.map_err(|e| self.fail(lane, e))
                }
                Err(e) => Err(self.fail(lane, e)),
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => {
                self.clear(lane);
                Err(Failure::Store(StoreError::Timeout(self.timeout)))
            }
        }
    }

    /// The lane's connection (`true`: reused), or a fresh one from the source.
    async fn connection(&self, lane: usize) -> Result<(Conn, bool), Failure> {
        if let Some(conn) = self.slot(lane).clone() {
            return Ok((conn, true));
        }
        // Another lane's connection serves as well (it is multiplexed) and
        // costs no round trip; the pool checks a connection it hands out
        // with two more, which a slow link may not fit in one timeout.
        if let Some(conn) = self.shared(lane) {
            return Ok((conn, true));
        }
        let conn = match &self.source {
            Source::Pool(pool) => {
                let pooled = pool
                    .get()
                    .await
                    .map_err(|e| Failure::Store(self.pool_error(e)))?;
                // A clone shares the pooled connection's socket; the pool
                // keeps recycling it for its other users.
                Conn::Single(MultiplexedConnection::clone(&pooled))
            }
            Source::Cluster(client) => {
                let _one_at_a_time = self.connecting.lock().await;
                if let Some(conn) = self.shared(lane) {
                    return Ok((conn, true));
                }
                Conn::Cluster(
                    client
                        .get_async_connection()
                        .await
                        .map_err(Failure::Redis)?,
                )
            }
            Source::Sentinel(sentinel) => {
                let _one_at_a_time = self.connecting.lock().await;
                if let Some(conn) = self.shared(lane) {
                    return Ok((conn, true));
                }
                let master = sentinel
                    .lock()
                    .await
                    .async_get_client()
                    .await
                    .map_err(Failure::Redis)?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout));
                Conn::Single(
                    master
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                        .map_err(Failure::Redis)?,
                )
            }
        };
        *self.slot(lane) = Some(conn.clone());
        Ok((conn, false))
    }

    /// Any lane's connection, copied into `lane`.
    fn shared(&self, lane: usize) -> Option<Conn> {
        let conn = (0..self.lanes.len()).find_map(|other| self.slot(other).clone())?;
        *self.slot(lane) = Some(conn.clone());
        Some(conn)
    }

    fn slot(&self, lane: usize) -> std::sync::MutexGuard<'_, Option<Conn>> {
        self.lanes[lane]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Empties every lane: lanes share connections, so the one that failed
    /// on this lane is likely held by others too. The next call on each
    /// takes a fresh, checked connection from the pool.
    fn clear(&self, _lane: usize) {
        for lane in 0..self.lanes.len() {
            *self.slot(lane) = None;
        }
    }

    /// Empties the lane if the error says the connection is unusable.
    fn fail(&self, lane: usize, e: RedisError) -> Failure {
        if is_unavailable(&e) {
            self.clear(lane);
        }
        Failure::Redis(e)
    }

    fn pool_error(&self, e: deadpool_redis::PoolError) -> StoreError {
        match e {
            deadpool_redis::PoolError::Timeout(_) => StoreError::Timeout(self.timeout),
            deadpool_redis::PoolError::Backend(e) if !is_unavailable(&e) => {
                StoreError::Command(e.to_string())
            }
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// An error before it is put in context.
enum Failure {
    Redis(RedisError),
    Store(StoreError),
}

impl Failure {
    /// The store error of a failed command (or pipeline) `what`.
    fn of_command(self, what: &str) -> StoreError {
        match self {
            Failure::Redis(e) => command_error(&e, what),
            Failure::Store(e) => e,
        }
    }
}

/// `FUNCTION LOAD` of the library.
fn function_load() -> Cmd {
    let mut load = ::redis::cmd("FUNCTION");
    load.arg("LOAD").arg(&LIBRARY.code);
    load
}

/// The outcome of `FUNCTION LOAD`: a library of the same name holds the same
/// code (the name is its hash), so one another pod loaded first is as good.
fn loaded(outcome: Result<Value, RedisError>) -> Result<(), RedisError> {
    match outcome {
        Err(e) if e.detail().is_some_and(|d| d.contains("already exists")) => Ok(()),
        other => other.map(drop),
    }
}

/// `cmd` on `conn`, sent to `route` on a cluster.
async fn on_route(conn: Conn, route: &RoutingInfo, cmd: &Cmd) -> Result<Value, RedisError> {
    cmd.query_async(&mut Routed::new(conn, route)).await
}

/// `FCALL` of a function the server does not hold (yet).
fn is_function_missing(e: &RedisError) -> bool {
    e.code() == Some("ERR") && e.detail().is_some_and(|d| d.contains("Function not found"))
}

/// The server cannot run functions (before Redis 7), or its ACL refuses
/// the command `FCALL` or `FUNCTION LOAD` to this user: scripts go by
/// `EVALSHA`. A key or channel the ACL refuses is not that: `EVALSHA` would
/// be refused too, and the error is the caller's to see.
fn refuses_functions(e: &RedisError) -> bool {
    let no_permission = matches!(e.kind(), ErrorKind::Server(ServerErrorKind::NoPerm))
        || e.code() == Some("NOPERM");
    // Redis 7: "NOPERM this user has no permissions to run the 'fcall' command".
    (no_permission && e.detail().is_some_and(|d| d.contains("to run the"))) || is_unknown_command(e)
}

/// A command this server does not have (`FCALL`, `FUNCTION` before Redis 7).
fn is_unknown_command(e: &RedisError) -> bool {
    e.code() == Some("ERR")
        && e.detail()
            .is_some_and(|d| d.to_ascii_lowercase().starts_with("unknown command"))
}

/// The connection was closed under the request (a restart, a dropped socket).
fn is_closed(e: &RedisError) -> bool {
    e.is_connection_dropped() || e.is_connection_refusal()
}

/// Redis cannot be reached, or cannot serve now: what a
/// [`StorePolicy`](crate::StorePolicy) covers.
fn is_unavailable(e: &RedisError) -> bool {
    e.is_io_error()
        || is_closed(e)
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::AuthenticationFailed
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ReadOnly
                )
        )
        // A long script elsewhere holds the server.
        || e.code() == Some("BUSY")
}

/// The error of a script on `agent`'s keys.
fn store_error(e: &RedisError, agent: &AgentId) -> StoreError {
    if let Some(corrupt) = e.detail().and_then(|d| super::reply::corruption(d, agent)) {
        return corrupt;
    }
    if let Some(detail) = e.detail().and_then(|d| d.strip_prefix(INVALID_DATA)) {
        return StoreError::InvalidData {
            what: format!("state of agent {agent}"),
            detail: detail.to_owned(),
        };
    }
    command_error(e, &format!("script reply for agent {agent}"))
}

/// The error of any command; `what` names the reply in [`StoreError::InvalidData`].
pub(super) fn command_error(e: &RedisError, what: &str) -> StoreError {
    if is_unavailable(e) {
        return StoreError::Unavailable(e.to_string());
    }
    match e.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => StoreError::InvalidData {
            what: what.to_owned(),
            detail: e.to_string(),
        },
        _ => StoreError::Command(e.to_string()),
    }
}
