//! [`Webhooks::spawn_redis`]: fleet-wide delivery through one Redis consumer
//! group per URL on `PREFIX:transitions`, and the names of what it uses.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::AlertsError;
use super::builder::Webhooks;
use super::consumer::Consumer;
use super::handle::WebhookHandle;
use super::stats::Stats;
use crate::store::RedisStore;
use crate::store::redis::alerts::link::Link;
use crate::store::redis::alerts::stream;

/// The shortest bound on a Redis command of the delivery tasks (the store's
/// timeout, 100 ms by default, is meant for the breaker's hot path).
const MIN_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// `PREFIX:webhooks:dead`, the stream of transitions given up on.
#[must_use]
pub fn dead_letter_key(keys: &crate::store::Keys) -> String {
    format!("{}:webhooks:dead", keys.prefix())
}

/// `webhook:URL` (password shown as `set`), the consumer group of one URL on
/// `PREFIX:transitions`.
#[must_use]
pub fn group_name(url_shown: &str) -> String {
    format!("webhook:{url_shown}")
}

impl Webhooks {
    /// Starts fleet-wide delivery: one task per URL, reading its consumer
    /// group on `PREFIX:transitions` of `store`'s Redis (6.2 or later): one
    /// server, a Redis Cluster (the node that owns the stream) or the master
    /// that Sentinel names, asked again on every reconnection.
    ///
    /// Every instance that spawns the same URLs on the same Redis shares
    /// the work: each transition is POSTed to each URL by one of them. The
    /// groups are created before this returns (a new group starts at the
    /// stream's end), so every transition made afterwards is delivered.
    ///
    /// # Errors
    ///
    /// [`AlertsError::Redis`] when Redis cannot be reached or refuses to
    /// create a group (a key of another type, a Redis older than 6.2 or an
    /// ACL without stream commands).
    pub async fn spawn_redis(&self, store: &RedisStore) -> Result<WebhookHandle, AlertsError> {
        let target = store.watch_target();
        let stream_key = store.keys().transitions();
        let dead_key = dead_letter_key(store.keys());
        let redis_timeout = store.timeout().max(MIN_REDIS_TIMEOUT);
        let link = Link::new(target, redis_timeout).map_err(AlertsError::Redis)?;
        if !self.endpoints.is_empty() {
            let mut conn = link.connect().await.map_err(AlertsError::Redis)?;
            for endpoint in self.endpoints.iter() {
                let group = group_name(endpoint.shown());
                stream::create_group(&mut conn, &stream_key, &group, None, redis_timeout)
                    .await
                    .map_err(AlertsError::Redis)?;
            }
        }
        let stats = Arc::new(Stats::new(
            self.endpoints.iter().map(|e| e.shown().to_owned()),
            self.observer.clone(),
        ));
        let (stop_tx, stop_rx) = watch::channel(false);
        let tasks = self
            .endpoints
            .iter()
            .enumerate()
            .map(|(index, endpoint)| {
                let consumer = Consumer {
                    index,
                    endpoint: endpoint.clone(),
                    hooks: self.clone(),
                    stats: Arc::clone(&stats),
                    link: link.clone(),
                    key: stream_key.clone(),
                    dead_key: dead_key.clone(),
                    group: group_name(endpoint.shown()),
                    prefix: store.keys().prefix().to_owned(),
                    stop: stop_rx.clone(),
                    next_due: None,
                    failures: 0,
                    resume_after: None,
                };
                tokio::spawn(consumer.run())
            })
            .collect();
        tracing::info!(
            urls = self.endpoints.len(),
            consumer = %self.settings.consumer,
            stream = %stream_key,
            redis = link.kind(),
            "webhooks: delivering transitions through Redis consumer groups"
        );
        Ok(WebhookHandle::new(stop_tx, tasks, stats))
    }
}
