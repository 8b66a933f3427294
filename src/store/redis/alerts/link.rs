//! How the delivery tasks reach Redis: one server, a Redis Cluster, or the
//! master the sentinels name now; and [`Conn`], the connection they get.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::sentinel::SentinelClient;

use crate::store::redis::watch::{WatchRoute, WatchTarget};

/// How to reach Redis, and the bound on each command.
#[derive(Clone)]
pub(crate) struct Link {
    route: Route,
    /// The bound on each command (a blocking read gets its block time more).
    pub(crate) timeout: Duration,
}

/// Each client shared by the tasks of all URLs (they connect on their own).
#[derive(Clone)]
enum Route {
    /// One Redis, always the same.
    Direct(Arc<redis::Client>),
    /// A cluster client of the delivery tasks' own (see [`Link::new`]).
    Cluster(Arc<ClusterClient>),
    /// The sentinels of the store, asked for the master on every connection.
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
}

impl Link {
    /// The way to the Redis of a store's `target`.
    ///
    /// On a cluster this is a cluster client on the store's seed nodes, but
    /// not the store's own: that one bounds every answer by the store's
    /// timeout (100 ms by default), shorter than a blocking `XREADGROUP`.
    /// This one has no response timeout; `stream` bounds each command.
    ///
    /// # Errors
    ///
    /// A message when the seed nodes make no cluster client (the
    /// store's own was made from the same, so in practice never).
    pub(crate) fn new(target: WatchTarget, timeout: Duration) -> Result<Self, String> {
        let route = match target.route {
            WatchRoute::Direct => Route::Direct(Arc::new(target.client)),
            WatchRoute::Cluster { nodes, .. } => {
                let seeds = if nodes.is_empty() {
                    vec![target.client]
                } else {
                    nodes
                };
                let cluster = ClusterClientBuilder::new(
                    seeds.iter().map(|seed| seed.get_connection_info().clone()),
                )
                .connection_timeout(timeout)
                .build()
                .map_err(|e| format!("cannot make a cluster client: {e}"))?;
                Route::Cluster(Arc::new(cluster))
            }
            WatchRoute::Sentinel(sentinels) => Route::Sentinel(sentinels),
        };
        Ok(Self { route, timeout })
    }

    /// What kind of deployment this reaches, for the logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self.route {
            Route::Direct(_) => "redis",
            Route::Cluster(_) => "redis cluster",
            Route::Sentinel(_) => "sentinel",
        }
    }

    /// A connection of its own: the delivery tasks block on reads, which
    /// must not hold up the breaker's pooled connections. Through Sentinel,
    /// the sentinels are asked for the master first, so a new connection
    /// follows a failover.
    pub(crate) async fn connect(&self) -> Result<Conn, String> {
        match &self.route {
            Route::Direct(client) => self.connect_to(client).await,
            Route::Cluster(cluster) => {
                bounded(self.timeout, "connect", cluster.get_async_connection())
                    .await
                    .map(Conn::Cluster)
            }
            Route::Sentinel(sentinels) => {
                let master = bounded(self.timeout, "ask the sentinels for the master", async {
                    sentinels.lock().await.async_get_client().await
                })
                .await?;
                self.connect_to(&master).await
            }
        }
    }

    async fn connect_to(&self, client: &redis::Client) -> Result<Conn, String> {
        // Commands are bounded one by one in `stream` (a blocking read needs
        // longer than the others), so no response timeout here.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(None);
        bounded(
            self.timeout,
            "connect",
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map(Conn::Single)
    }
}

/// Runs a Redis call with a deadline; errors are text for the log.
async fn bounded<T>(
    limit: Duration,
    what: &str,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {limit:?}")),
    }
}

/// A connection of a delivery task: the store's kind (one server, directly
/// or the master Sentinel named, or a cluster).
pub(crate) use crate::store::redis::Conn;
