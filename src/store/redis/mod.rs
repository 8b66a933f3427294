//! [`RedisStore`]: breaker state shared by a fleet, changed only by Lua scripts.
//!
//! - `mod.rs`: the store and its [`BreakerStore`] implementation.
//! - `scripts.rs` and `lua/`: the Lua scripts, one per operation.
//! - `keys.rs`: [`Keys`], the key layout.
//! - `watch/`: the pub/sub watcher behind the store's [`Feed`].
//! - `journal.rs`: the routing journal (recent failures, routing events).
//! - `alerts/`: the stream commands webhook delivery reads with.
//! - `builder.rs`: [`RedisStoreBuilder`], connection settings and checks.
//! - `conn.rs`: the connections scripts run on, and error mapping.
//! - `reply.rs`: reading the scripts' replies.
//! - `target.rs`: [`RedisTarget`], one Redis, a cluster or Sentinel.
//! - `topology.rs`: the clients of a cluster and of Sentinel.
//! - `cluster.rs`: what the client writes after a script on a cluster.
//!

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::{Applied, BreakerStore, Census, Feed, Op, StoreError};
use crate::agent_id::AgentId;
use crate::clock::Clock;
use crate::config::{BreakerConfig, duration_ms};
use crate::model::{Decision, Snapshot};
use crate::store::journal::RoutingJournal;
use scripts::Call;
use watch::{WatchRoute, WatchTarget};

#[cfg(feature = "service")]
pub(crate) mod alerts;
mod builder;
mod census;
mod cluster;
mod conn;
mod fleet_config;
mod journal;
mod keys;
mod peek;
mod reply;
mod scripts;
mod stored;
mod target;
mod topology;
pub(crate) mod watch;

pub use builder::RedisStoreBuilder;
pub use builder::redact_url;
pub(crate) use conn::Conn;
pub use keys::Keys;
pub use target::{ENV_CLUSTER_URLS, ENV_SENTINEL_MASTER, ENV_SENTINEL_URLS, ENV_URL, RedisTarget};

/// The default key prefix, which namespaces one fleet.
pub const DEFAULT_PREFIX: &str = "fleet-breaker";

/// The default timeout of every Redis operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

/// The longest force TTL: a force must end at a time a Lua number (a double)
/// holds exactly, 2^53 ms. 2^52 ms is about 142,000 years.
const MAX_FORCE_TTL_MS: u64 = 1 << 52;

/// The store a fleet shares: every agent's state in Redis (DESIGN.md section 3).
///
/// ## Behavior
///
/// - Every operation runs one Lua script (`lua/`), atomically, on the keys of
///   one agent: one `FCALL` of a function of the store's library, nothing
///   else (on a cluster, see the last item). Scripts read the time from
///   Redis `TIME`, so pods with skewed clocks agree.
/// - The library is loaded again on `Function not found`, so a restarted or
///   flushed Redis is invisible to callers. Where Redis refuses functions
///   (before Redis 7, or an ACL without `FCALL` and `FUNCTION LOAD`), the
///   same scripts run by `EVALSHA`, reloaded on `NOSCRIPT`.
/// - Scripts check every argument and stored field before they write: a
///   corrupt hash gives [`StoreError::InvalidData`] naming the key and field,
///   and nothing is written.
/// - An acquire on a closed circuit writes nothing; other operations write
///   only the fields that changed.
/// - Every operation is bounded by the timeout (default 100 ms); past it the
///   caller gets [`StoreError::Timeout`], never a hang.
/// - Scripts run on multiplexed connections taken from the pool and reused.
///   A reused connection found closed (a restart) is replaced and the call
///   retried once, within the timeout; if the connection died after Redis
///   ran the script and before its reply arrived, the operation is applied
///   twice.
/// - Clones share the connections.
/// - On a Redis Cluster ([`RedisTarget::Cluster`]) each script still runs
///   atomically on its agent's slot, but `PREFIX:agents` and
///   `PREFIX:transitions` live in other slots: the store adds a new agent
///   to the set and appends a transition to the stream itself, right after
///   the script (two more commands, only when an agent is created or a
///   transition happens). Those two are not atomic with the script: a pod
///   that dies in between leaves the agent out of `agents()` until it next
///   gets created, or the transition out of the stream (the pub/sub message
///   went out from the script, so live watchers have it). A failure of
///   either is logged at WARN and does not fail the operation.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    lanes: conn::Lanes,
    /// For the watcher's dedicated pub/sub connection.
    client: ::redis::Client,
    /// Where the watcher reconnects (a cluster node, the current master).
    route: WatchRoute,
    /// A Redis Cluster: scripts get the agent's keys only.
    cluster: bool,
    keys: Keys,
    timeout: Duration,
    transitions_max_len: u64,
    clock_override: Option<Arc<dyn Clock>>,
    url_display: String,
    /// Malformed entries of `PREFIX:failures` reads skipped (`journal.rs`).
    failures_skipped: AtomicU64,
    /// The scripts' common arguments under the config last used.
    common: Mutex<Option<Arc<scripts::Common>>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.inner.url_display)
            .field("prefix", &self.inner.keys.prefix())
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A builder for the Redis at `url` (`redis://[user:password@]host:port[/db]`);
    /// a `redis+cluster://` or `redis+sentinel://` URL selects that
    /// deployment (see [`RedisTarget::parse`]).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(url.into())
    }

    /// The store's Redis URL with any password shown as `set`, for messages.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.inner.url_display
    }

    /// A builder for `target`: one Redis, a cluster or Sentinel.
    pub fn builder_for(target: RedisTarget) -> RedisStoreBuilder {
        RedisStoreBuilder::for_target(target)
    }

    /// The store of `target` with the default settings, checked (one
    /// `PING`): what a binary calls with [`RedisTarget::from_env`] or its
    /// flags' target.
    ///
    /// # Errors
    ///
    /// As [`RedisStoreBuilder::build`].
    pub async fn connect(target: RedisTarget) -> Result<Self, StoreError> {
        Self::builder_for(target).build().await
    }

    /// Whether the store runs on a Redis Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        self.inner.cluster
    }

    /// The key layout this store uses.
    #[must_use]
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// The connection pool, for callers that need other commands on the
    /// same Redis; `None` on a cluster or through Sentinel, which have no
    /// single server to pool connections to.
    #[must_use]
    pub fn pool(&self) -> Option<&deadpool_redis::Pool> {
        self.inner.lanes.pool()
    }

    /// Runs one command on the store's connections (no pool check round
    /// trips), bounded by the timeout; `what` names it in errors.
    pub(crate) async fn query<T: ::redis::FromRedisValue>(
        &self,
        cmd: &::redis::Cmd,
        what: &str,
    ) -> Result<T, StoreError> {
        self.inner.lanes.query(cmd, what).await
    }

    /// Counts `n` malformed failure records a read skipped.
    pub(crate) fn count_failures_skipped(&self, n: u64) {
        self.inner.failures_skipped.fetch_add(n, Ordering::Relaxed);
    }

    /// Malformed failure records skipped by reads so far.
    pub(crate) fn failures_skipped_so_far(&self) -> u64 {
        self.inner.failures_skipped.load(Ordering::Relaxed)
    }

    /// The bound on every operation.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The scripts' common arguments under `config`: those of the last
    /// call when it had the same config (a breaker has one), else made anew.
    fn common(&self, config: &BreakerConfig) -> Arc<scripts::Common> {
        let max_len = self.inner.transitions_max_len;
        let mut last = self
            .inner
            .common
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &*last {
            Some(common) if common.fits(config, max_len) => Arc::clone(common),
            _ => {
                let common = Arc::new(scripts::Common::new(&self.inner.keys, config, max_len));
                *last = Some(Arc::clone(&common));
                common
            }
        }
    }

    /// The keys and common arguments of a script call on `agent`.
    fn call(&self, config: &BreakerConfig, agent: &AgentId) -> Call {
        let now_override = self
            .inner
            .clock_override
            .as_ref()
            .map(|clock| clock.now_ms());
        Call::new(
            &self.inner.keys,
            agent,
            self.common(config),
            now_override,
            self.inner.cluster,
        )
    }

    /// Runs `op`; on a cluster, also does the writes the script left
    /// out (see the type's `## Behavior`) and strips its `created` item.
    async fn eval(
        &self,
        op: &scripts::Op,
        call: &Call,
        agent: &AgentId,
    ) -> Result<::redis::Value, StoreError> {
        let value = self.inner.lanes.eval(op, call, agent).await?;
        if !self.inner.cluster {
            return Ok(value);
        }
        Ok(cluster::after_script(self, value, agent).await)
    }

    /// Answers a PING, or says what to check (also [`BreakerStore::ping`]).
    async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self
            .inner
            .lanes
            .query(&::redis::cmd("PING"), "PING reply")
            .await
            .map_err(|e| {
                let cause = match e {
                    StoreError::Timeout(t) => return StoreError::Timeout(t),
                    StoreError::Unavailable(cause) | StoreError::Command(cause) => cause,
                    other => other.to_string(),
                };
                StoreError::Unavailable(format!(
                    "no answer from Redis at {} ({cause}); check that Redis runs there and \
                     that the URL's host, port, user, password and database are right",
                    self.inner.url_display
                ))
            })?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::InvalidData {
                what: "PING reply".to_owned(),
                detail: format!("{pong:?}, expected \"PONG\""),
            })
        }
    }
}

impl RedisStore {
    /// Runs the script of `op` on `agent`.
    async fn run(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        op: Op<'_>,
    ) -> Result<Option<Applied<Option<Decision>>>, StoreError> {
        let call = self.call(config, agent);
        let (script, call) = match op {
            Op::Acquire { permit_id } => {
                let value = self
                    .eval(&scripts::ACQUIRE, &call.arg(permit_id), agent)
                    .await?;
                let applied = reply::acquire(value, agent)?;
                return Ok(Some(Applied {
                    value: Some(applied.value),
                    snapshot: applied.snapshot,
                    transition: applied.transition,
                    now_ms: applied.now_ms,
                }));
            }
            Op::Record { ticket, report } => (
                &*scripts::RECORD,
                call.arg(ticket.permit_id.as_str())
                    .arg(ticket.generation.to_string())
                    .arg(report.outcome.as_str())
                    .arg(if report.slow { "1" } else { "0" })
                    .arg(
                        report
                            .retry_after_ms
                            .map_or_else(String::new, |ms| ms.to_string()),
                    )
                    .arg(crate::model::reporter_id(report.pod)),
            ),
            Op::Configure(settings) => {
                let mut call = call;
                for (name, value) in settings.fields() {
                    call = call.arg(name).arg(value);
                }
                (&*scripts::CONFIGURE, call)
            }
            Op::Flush(batch) => (
                &*scripts::FLUSH,
                call.arg(batch.generation.to_string())
                    .arg(batch.successes.to_string())
                    .arg(batch.last_success_ms.unwrap_or(0).to_string())
                    .arg(batch.rejections.to_string()),
            ),
            Op::Reset => (&*scripts::RESET, call),
            Op::Force { mode, ttl } => {
                let ttl_ms = ttl.map(duration_ms);
                if let Some(ms) = ttl_ms.filter(|&ms| ms > MAX_FORCE_TTL_MS) {
                    return Err(StoreError::InvalidSettings(format!(
                        "a force TTL of {ms} ms is longer than the {MAX_FORCE_TTL_MS} ms Redis \
                         scripts can hold exactly; force with no TTL to hold it until changed"
                    )));
                }
                let ttl = ttl_ms.map_or_else(String::new, |ms| ms.to_string());
                (&*scripts::FORCE, call.arg(mode.as_str()).arg(ttl))
            }
            Op::Snapshot => (&*scripts::SNAPSHOT, call),
        };
        let value = self.eval(script, &call, agent).await?;
        if self.inner.cluster && matches!(op, Op::Snapshot) && value == ::redis::Value::Nil {
            // An agent whose keys are gone (expired, deleted): out of the
            // census too, as the script does itself on one Redis.
            cluster::census_write(self, agent, b"-").await;
        }
        let applied = reply::unit(value, agent)?.map(|applied| Applied {
            value: None,
            snapshot: applied.snapshot,
            transition: applied.transition,
            now_ms: applied.now_ms,
        });
        if applied.is_none() && op.creates() {
            return Err(StoreError::InvalidData {
                what: format!("script reply for agent {agent}"),
                detail: format!("the {} script answered nil", op.name()),
            });
        }
        Ok(applied)
    }

    /// What the watcher behind the store's feed, and webhook delivery,
    /// connect with.
    pub(crate) fn watch_target(&self) -> WatchTarget {
        WatchTarget {
            client: self.inner.client.clone(),
            route: self.inner.route.clone(),
            keys: self.inner.keys.clone(),
            timeout: self.inner.timeout,
        }
    }
}

#[async_trait]
impl BreakerStore for RedisStore {
    async fn apply(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        op: Op<'_>,
    ) -> Result<Option<Applied<Option<Decision>>>, StoreError> {
        self.run(config, agent, op).await
    }

    /// `SSCAN` page by page: each page bounded by the store's timeout.
    async fn agents(&self) -> Result<Vec<AgentId>, StoreError> {
        self.scan_agents().await
    }

    /// One `HGETALL` per agent, many in flight, no script.
    async fn read_many(
        &self,
        config: &BreakerConfig,
        agents: &[AgentId],
    ) -> Result<Vec<Result<Option<Snapshot>, StoreError>>, StoreError> {
        self.peek_many(config, agents).await
    }

    /// `SCARD` of the agents set and `HGETALL` of the census hash.
    async fn census(&self, named: &[AgentId]) -> Result<Option<Census>, StoreError> {
        self.read_census(named).await.map(Some)
    }

    /// One sweep by at most one pod of the fleet per interval.
    async fn sweep_idle(&self, config: &BreakerConfig) -> Result<u64, StoreError> {
        self.sweep(config).await
    }

    /// A pub/sub subscription to the store's transitions, with a replay of
    /// the stream after each reconnection: see the watcher's behaviour list.
    fn feed(&self) -> Feed {
        let target = self.watch_target();
        Feed::remote(move |feed| watch::spawn(target, feed))
            .with_clock(self.inner.clock_override.clone())
    }

    /// One `PING`, bounded by the store's timeout; a closed pooled
    /// connection is replaced and the `PING` retried once, within it.
    async fn ping(&self) -> Result<(), StoreError> {
        // The inherent `ping` (path resolution prefers it to this one).
        RedisStore::ping(self).await
    }

    async fn fleet_configs(
        &self,
        instance: &str,
        fingerprint: &str,
    ) -> Result<Option<Vec<super::FleetConfig>>, StoreError> {
        Ok(Some(
            self.publish_fleet_config(instance, fingerprint).await?,
        ))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn journal(&self) -> Option<Arc<dyn RoutingJournal>> {
        Some(Arc::new(self.clone()))
    }
}
