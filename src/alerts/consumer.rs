//! The delivery task of one URL on Redis: reads its consumer group, retries,
//! takes over stalled deliveries, dead-letters.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::builder::Webhooks;
use super::endpoint::Endpoint;
use super::handle::stopped;
use super::stats::{DeliveryOutcome, Stats};
use crate::store::redis::alerts::link::{Conn, Link};
use crate::store::redis::alerts::stream::{self, Claim, DeadLetter, Entry, Group};
use crate::store::redis::watch::message::Shown;
use crate::store::redis::watch::message::decode_transition;

/// New entries asked for per `XREADGROUP`.
const READ_COUNT: usize = 16;
/// Pending deliveries looked at per `XPENDING`.
const PENDING_COUNT: usize = 100;
/// Between two attempts to reach Redis, at first and at most.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// The delivery task of one URL.
pub(super) struct Consumer {
    pub(super) index: usize,
    pub(super) endpoint: Endpoint,
    pub(super) hooks: Webhooks,
    pub(super) stats: Arc<Stats>,
    pub(super) link: Link,
    pub(super) key: String,
    pub(super) dead_key: String,
    pub(super) group: String,
    /// The store's key prefix, for the PagerDuty dedup key and messages.
    pub(super) prefix: String,
    pub(super) stop: watch::Receiver<bool>,
    /// When this consumer's earliest failed delivery is due for a retry.
    pub(super) next_due: Option<Instant>,
    /// Failed sessions in a row.
    pub(super) failures: u32,
    /// The newest stream id this consumer knows of (the stream's tip when
    /// it first made the group, then each entry it read): where its group
    /// starts again if a flush of Redis took it (see
    /// `stream::create_group`). `None` before the first session.
    pub(super) resume_after: Option<String>,
}

impl Consumer {
    pub(super) async fn run(mut self) {
        let mut stop = self.stop.clone();
        loop {
            match self.session().await {
                Ok(()) => break,
                Err(error) => {
                    self.failures = self.failures.saturating_add(1);
                    if self.failures == 1 {
                        tracing::warn!(
                            url = %self.endpoint.shown(), %error,
                            "webhooks: lost Redis; retrying with backoff (further failures logged at DEBUG)"
                        );
                    } else {
                        tracing::debug!(url = %self.endpoint.shown(), %error, "webhooks: Redis still failing");
                    }
                }
            }
            let delay = RECONNECT_MIN
                .saturating_mul(1 << self.failures.min(8))
                .min(RECONNECT_MAX);
            tokio::select! {
                () = stopped(&mut stop) => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        self.leave().await;
    }

    fn group<'a>(&'a self, conn: &'a mut Conn) -> Group<'a> {
        Group {
            conn,
            key: &self.key,
            group: &self.group,
            consumer: &self.hooks.settings.consumer,
            timeout: self.link.timeout,
        }
    }

    fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Connects, makes sure the group exists (Redis may have restarted),
    /// then retries and reads until told to stop (`Ok`) or Redis fails.
    async fn session(&mut self) -> Result<(), String> {
        let mut conn = self.link.connect().await?;
        let timeout = self.link.timeout;
        stream::create_group(
            &mut conn,
            &self.key,
            &self.group,
            self.resume_after.as_deref(),
            timeout,
        )
        .await?;
        if self.resume_after.is_none() {
            self.resume_after = Some(stream::tip(&mut conn, &self.key, timeout).await?);
        }
        if self.failures > 0 {
            tracing::info!(url = %self.endpoint.shown(), "webhooks: Redis reached again");
            self.failures = 0;
        }
        loop {
            if self.is_stopped() {
                return Ok(());
            }
            self.retry_due(&mut conn).await?;
            // Not cut short by a stop: Redis may hand entries to this
            // consumer until the read returns, and they must be handed back.
            let block = self.block_time();
            let entries = self.group(&mut conn).read_new(READ_COUNT, block).await?;
            self.note_read(&entries);
            let mut entries = entries.into_iter();
            while let Some(entry) = entries.next() {
                if self.is_stopped() {
                    self.release(&mut conn, entry, entries).await;
                    return Ok(());
                }
                self.deliver(&mut conn, entry, 1).await?;
            }
        }
    }

    /// Moves [`Self::resume_after`] to the newest entry read.
    fn note_read(&mut self, entries: &[Entry]) {
        let Some(newest) = entries
            .iter()
            .filter_map(|e| stream::id_order(&e.id).map(|o| (o, e)))
            .max_by_key(|(o, _)| *o)
        else {
            return;
        };
        let known = self.resume_after.as_deref().and_then(stream::id_order);
        if known.is_none_or(|known| newest.0 > known) {
            self.resume_after = Some(newest.1.id.clone());
        }
    }

    /// How long a read may wait: the poll interval, or less when one of
    /// this consumer's retries is due sooner.
    fn block_time(&self) -> Duration {
        let poll = self.hooks.settings.poll_interval;
        self.next_due.map_or(poll, |due| {
            due.saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), poll)
        })
    }

    /// Takes and tries the pending deliveries whose time has come: this
    /// consumer's own after their backoff, other consumers' once also idle
    /// for the reclaim time (their instance stopped or hangs).
    async fn retry_due(&mut self, conn: &mut Conn) -> Result<(), String> {
        let settings = Arc::clone(&self.hooks.settings);
        let min_idle = settings.backoff_base.min(settings.reclaim_idle);
        let pending = self.group(conn).pending(min_idle, PENDING_COUNT).await?;
        self.next_due = None;
        for p in pending {
            if self.is_stopped() {
                break;
            }
            let own = p.consumer == settings.consumer;
            let backoff = settings.backoff(p.deliveries);
            let due_at = if own {
                backoff
            } else {
                backoff.max(settings.reclaim_idle)
            };
            if p.idle < due_at {
                if own {
                    let due = Instant::now() + (due_at - p.idle);
                    self.next_due = Some(self.next_due.map_or(due, |d| d.min(due)));
                }
                continue;
            }
            match self.group(conn).claim(&p.id, due_at).await? {
                Claim::Claimed(entry) => {
                    if !own {
                        tracing::info!(
                            url = %self.endpoint.shown(), id = %p.id, from = %p.consumer,
                            idle_ms = u64::try_from(p.idle.as_millis()).unwrap_or(u64::MAX),
                            "webhooks: took over a stalled delivery"
                        );
                    }
                    self.deliver(conn, entry, p.deliveries + 1).await?;
                }
                Claim::Gone => self.group(conn).ack(&p.id).await?,
                Claim::Lost => {}
            }
        }
        Ok(())
    }

    /// Makes try number `tries` of `entry`, then acknowledges it, leaves it
    /// pending for a retry, or dead-letters it.
    async fn deliver(&mut self, conn: &mut Conn, entry: Entry, tries: u64) -> Result<(), String> {
        let started = Instant::now();
        let settings = Arc::clone(&self.hooks.settings);
        let url = self.endpoint.shown();
        let (msg, transition) = match entry.msg {
            Some(msg) => match decode_transition(&msg) {
                Ok(transition) => (msg, transition),
                Err(error) => {
                    tracing::warn!(
                        url, stream = %self.key, id = %entry.id, %error, payload = %Shown(&msg),
                        "webhooks: skipping a malformed transition entry"
                    );
                    self.stats.record(self.index, DeliveryOutcome::Malformed);
                    return self.group(conn).ack(&entry.id).await;
                }
            },
            None => {
                tracing::warn!(
                    url, stream = %self.key, id = %entry.id,
                    "webhooks: skipping a transition entry without a `msg` field"
                );
                self.stats.record(self.index, DeliveryOutcome::Malformed);
                return self.group(conn).ack(&entry.id).await;
            }
        };
        let Some(body) = self.endpoint.body_for(&transition, &msg, &self.prefix) else {
            self.stats.record(self.index, DeliveryOutcome::Filtered);
            tracing::debug!(url, id = %entry.id, "webhooks: filtered out");
            return self.group(conn).ack(&entry.id).await;
        };
        let max_tries = u64::from(settings.max_tries);
        if tries > max_tries {
            // Its last try was handed to an instance that stopped before it
            // could record the result.
            let error = "its last try was interrupted (the instance stopped)";
            return self
                .dead_letter(conn, &entry.id, &msg, tries - 1, error)
                .await;
        }
        let result = self
            .endpoint
            .post(&self.hooks.client, body, &entry.id, tries, settings.timeout)
            .await;
        match result {
            Ok(()) => {
                self.stats.record(self.index, DeliveryOutcome::Delivered);
                tracing::debug!(url, id = %entry.id, tries, "webhooks: delivered");
                self.group(conn).ack(&entry.id).await
            }
            Err(error) if tries >= max_tries => {
                self.dead_letter(conn, &entry.id, &msg, tries, &error).await
            }
            Err(error) => {
                self.stats.record(self.index, DeliveryOutcome::Failed);
                let delay = settings.backoff(tries);
                tracing::warn!(
                    url, id = %entry.id, tries, max_tries, %error,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "webhooks: delivery failed; will retry"
                );
                let due = started + delay;
                self.next_due = Some(self.next_due.map_or(due, |d| d.min(due)));
                Ok(())
            }
        }
    }

    async fn dead_letter(
        &mut self,
        conn: &mut Conn,
        id: &str,
        msg: &[u8],
        tries: u64,
        error: &str,
    ) -> Result<(), String> {
        let settings = Arc::clone(&self.hooks.settings);
        let letter = DeadLetter {
            url: self.endpoint.shown(),
            id,
            msg,
            tries,
            error,
        };
        let dead_key = self.dead_key.clone();
        self.group(conn)
            .dead_letter(&dead_key, settings.dead_letter_max_len, &letter)
            .await?;
        self.stats.record(self.index, DeliveryOutcome::DeadLettered);
        tracing::error!(
            url = %self.endpoint.shown(), id, tries, error, dead_letters = %dead_key,
            "webhooks: gave up on a transition; it is in the dead letters"
        );
        Ok(())
    }

    /// Hands back entries read but not tried, so that other instances take
    /// them without waiting for the reclaim time.
    async fn release(&mut self, conn: &mut Conn, first: Entry, rest: impl Iterator<Item = Entry>) {
        let settings = Arc::clone(&self.hooks.settings);
        let idle = settings.reclaim_idle.max(settings.backoff_base);
        for entry in std::iter::once(first).chain(rest) {
            if let Err(error) = self.group(conn).release(&entry.id, idle).await {
                tracing::debug!(url = %self.endpoint.shown(), %error, "webhooks: cannot hand back a delivery");
                return;
            }
        }
    }

    /// On a graceful stop: leaves the group when this consumer holds no
    /// delivery, so stopped instances do not pile up in it.
    async fn leave(&self) {
        if !self.is_stopped() {
            return;
        }
        let Ok(mut conn) = self.link.connect().await else {
            return;
        };
        let mut group = self.group(&mut conn);
        if group.own_pending().await == Ok(0)
            && let Err(error) = group.delete_consumer().await
        {
            tracing::debug!(url = %self.endpoint.shown(), %error, "webhooks: cannot leave the group");
        }
    }
}
