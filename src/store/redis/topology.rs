//! The clients of a Redis Cluster and of Sentinel: where a store's lanes
//! and its watcher connect, for the deployments beyond one Redis.

use std::sync::Arc;
use std::time::Duration;

use ::redis::cluster::ClusterClientBuilder;
use ::redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use ::redis::{IntoConnectionInfo, RedisConnectionInfo};

use super::super::StoreError;
use super::builder::redact_url;
use super::conn::Source;
use super::watch::WatchRoute;

/// What a store needs from a deployment: the lanes' source, the watcher's
/// route and a client for the watcher's first connection.
pub(super) struct Topology {
    pub(super) source: Source,
    pub(super) route: WatchRoute,
    pub(super) client: ::redis::Client,
    /// How the deployment shows in logs and errors, passwords as `set`.
    pub(super) display: String,
    /// Scripts must leave the keys of other slots to the client.
    pub(super) cluster: bool,
}

fn invalid(what: &str, url: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::InvalidSettings(format!(
        "cannot use the {what} URL {}: {detail}; expected redis://[user:password@]host:port",
        redact_url(url)
    ))
}

fn show(urls: &[String]) -> String {
    urls.iter()
        .map(|url| redact_url(url))
        .collect::<Vec<_>>()
        .join(",")
}

/// A Redis Cluster from seed node URLs: one cluster client for the lanes
/// (it reads the slot map from whichever seed answers and follows MOVED,
/// ASK and failovers), and the seeds for the watcher's subscription.
pub(super) fn cluster(nodes: &[String], timeout: Duration) -> Result<Topology, StoreError> {
    let clients = nodes
        .iter()
        .map(|url| ::redis::Client::open(url.as_str()).map_err(|e| invalid("cluster node", url, e)))
        .collect::<Result<Vec<_>, _>>()?;
    let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .build()
        .map_err(|e| {
            StoreError::InvalidSettings(format!(
                "cannot make a cluster client for {}: {e}",
                show(nodes)
            ))
        })?;
    Ok(Topology {
        source: Source::Cluster(Box::new(client.clone())),
        client: clients[0].clone(),
        route: WatchRoute::Cluster {
            nodes: clients,
            cluster: Box::new(client),
        },
        display: format!("cluster {}", show(nodes)),
        cluster: true,
    })
}

/// The master that `sentinels` monitor as `master_name`, looked up on every
/// new connection. The first sentinel URL's user, password and db are the
/// master's; the sentinels themselves are asked without them.
pub(super) async fn sentinel(
    sentinels: &[String],
    master_name: &str,
    timeout: Duration,
) -> Result<Topology, StoreError> {
    let mut infos = Vec::with_capacity(sentinels.len());
    for url in sentinels {
        let info = url
            .as_str()
            .into_connection_info()
            .map_err(|e| invalid("sentinel", url, e))?;
        infos.push(info);
    }
    let master_info: RedisConnectionInfo = infos[0].redis_settings().clone();
    // The sentinels answer without AUTH or SELECT.
    let bare: Vec<_> = infos
        .iter()
        .map(|info| {
            info.clone()
                .set_redis_settings(RedisConnectionInfo::default())
        })
        .collect();
    let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(master_info);
    // A `String` fits both signatures of `build` (the redis crate's
    // `tls-rustls` feature, on with ours, turns it into `impl AsRef<str>`).
    #[allow(clippy::unnecessary_to_owned)]
    let client = SentinelClient::build(
        bare,
        master_name.to_owned(),
        Some(node),
        SentinelServerType::Master,
    )
    .map_err(|e| {
        StoreError::InvalidSettings(format!(
            "cannot make a sentinel client for {}: {e}",
            show(sentinels)
        ))
    })?;
    let mut client = client;
    let display = format!("sentinel {} master {master_name}", show(sentinels));
    // Asking the sentinels, then the master's ROLE, takes a few round trips.
    let bound = timeout.max(Duration::from_secs(1));
    let master = match tokio::time::timeout(bound, client.async_get_client()).await {
        Ok(Ok(master)) => master,
        Ok(Err(e)) => {
            return Err(StoreError::Unavailable(format!(
                "the sentinels {display} name no reachable master: {e}; check the sentinel \
                 addresses and the master name"
            )));
        }
        Err(_) => {
            return Err(StoreError::Unavailable(format!(
                "the sentinels {display} did not name a master within {bound:?}"
            )));
        }
    };
    let shared = Arc::new(tokio::sync::Mutex::new(client));
    Ok(Topology {
        source: Source::Sentinel(Arc::clone(&shared)),
        route: WatchRoute::Sentinel(shared),
        client: master,
        display,
        cluster: false,
    })
}
