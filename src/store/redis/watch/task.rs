//! The watcher task: connect, set up (subscribe, restart check, replay,
//! resync), serve, and reconnect with backoff when the connection dies.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use redis::AsyncConnectionConfig;
use redis::aio::ConnectionLike;
use tokio::sync::broadcast;

use super::heartbeat::Beat;
use super::message::{MessageError, decode_counts, decode_transition};
use super::replay::{self, PAGE};
use super::session::{Complaints, Failure, Ping, Session, backoff, bounded, random};
use super::verify::{Delivered, Refusals};
use super::{WatchRoute, WatchTarget};
use crate::agent_id::AgentId;
use crate::model::Transition;
use crate::store::FeedSink;
use crate::store::feed::FeedStats as Shared;
use crate::store::redis::Conn as RedisConn;
use crate::store::{FeedOptions, Resync};

mod deliver;

/// The shortest bound on establishing a connection.
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Most `XREAD` pages one replay reads; past that the resync catches up.
const MAX_REPLAY_PAGES: usize = 64;

/// The watcher's state across connections.
pub(super) struct Task {
    target: WatchTarget,
    sink: Arc<dyn FeedSink>,
    resync: Resync,
    options: FeedOptions,
    shared: Arc<Shared>,
    sender: broadcast::Sender<Transition>,
    events: String,
    counts: String,
    /// `PREFIX:heartbeat`.
    heartbeat: String,
    /// This watcher's id as a holder of the heartbeat lease.
    holder: String,
    stream: String,
    /// The id of the last stream entry read; `None` before the first
    /// connection (and after a Redis restart): the next one reads the tip.
    last_id: Option<String>,
    /// The server's `run_id` at the last connection.
    run_id: Option<String>,
    /// Per agent, the epoch and generation last delivered to subscribers
    /// (only agents the store confirmed: forged ids take no room).
    delivered: HashMap<AgentId, Delivered>,
    /// The plain connection of the last (re)connection: the replay, and the
    /// checks of transitions against the store (`verify.rs`).
    plain: Option<RedisConn>,
    complaints: Complaints,
    refusals: Refusals,
    /// Whether the refusal of `INFO` was logged already.
    info_refusal_logged: bool,
    /// Connection attempts so far, from a random start: on a cluster, which
    /// seed node is next.
    attempts: usize,
}

impl Task {
    pub(super) fn new(
        target: WatchTarget,
        sink: Arc<dyn FeedSink>,
        resync: Resync,
        options: FeedOptions,
        shared: Arc<Shared>,
        sender: broadcast::Sender<Transition>,
    ) -> Self {
        let keys = &target.keys;
        let (events, counts, stream) = (keys.events(), keys.counts(), keys.transitions());
        let heartbeat = keys.heartbeat();
        Self {
            complaints: Complaints::new(Arc::clone(&shared)),
            target,
            sink,
            resync,
            options,
            shared,
            sender,
            events,
            counts,
            heartbeat,
            holder: format!("{:016x}", random()),
            stream,
            last_id: None,
            run_id: None,
            delivered: HashMap::new(),
            plain: None,
            refusals: Refusals::default(),
            info_refusal_logged: false,
            // Each watcher starts on a random seed node of a cluster, so a
            // fleet's subscriptions (and the fan-out of every `PUBLISH`)
            // spread over the nodes instead of all landing on the first.
            attempts: usize::try_from(random() % 1024).unwrap_or(0),
        }
    }

    fn connect_timeout(&self) -> Duration {
        self.target.timeout.max(MIN_CONNECT_TIMEOUT)
    }

    /// The bound on each setup command and on each ping's answer.
    fn command_timeout(&self) -> Duration {
        self.target.timeout.max(self.options.ping_interval)
    }

    /// Runs until aborted (its [`FeedHandle`](crate::store::FeedHandle) is dropped).
    pub(super) async fn run(mut self) {
        let mut failures: u32 = 0;
        let mut ever_connected = false;
        // Whether this outage (or the wait for the first connection) was
        // reported at WARN already, and since when it lasts.
        let mut warned = false;
        let mut down_since = Instant::now();
        loop {
            match self.connect().await {
                Ok(mut session) => {
                    self.shared.connected.store(true, Ordering::Release);
                    let down_ms = down_since.elapsed().as_millis();
                    if ever_connected {
                        self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            channel = %self.events, attempts = failures + 1, down_ms,
                            "watcher: subscription back"
                        );
                    } else if warned {
                        tracing::info!(
                            channel = %self.events, attempts = failures + 1, down_ms,
                            "watcher: subscribed"
                        );
                    } else {
                        tracing::debug!(channel = %self.events, "watcher: subscribed");
                    }
                    (ever_connected, failures) = (true, 0);
                    let reason = self.serve(&mut session).await;
                    drop(session);
                    self.shared.connected.store(false, Ordering::Release);
                    self.sink.untrusted();
                    if self.shared.stopped.load(Ordering::Acquire) {
                        // The handle is gone and the process may be shutting
                        // its runtime down under us: a closed connection is
                        // the shutdown, not an outage to report.
                        return;
                    }
                    tracing::warn!(
                        channel = %self.events, %reason,
                        "watcher: subscription lost; the local cache is not trusted until it is back"
                    );
                    (warned, down_since) = (true, Instant::now());
                }
                Err(failure) => {
                    self.sink.untrusted();
                    if self.shared.stopped.load(Ordering::Acquire) {
                        return;
                    }
                    failures = failures.saturating_add(1);
                    if warned {
                        tracing::debug!(
                            channel = %self.events, %failure, attempt = failures,
                            "watcher: still cannot subscribe"
                        );
                    } else {
                        tracing::warn!(
                            channel = %self.events, %failure,
                            "watcher: cannot subscribe; retrying with backoff (further failures logged at DEBUG)"
                        );
                        warned = true;
                    }
                }
            }
            let delay = backoff(
                self.options.reconnect_min,
                self.options.reconnect_max,
                failures,
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Subscribes, checks for a restart, replays, resyncs, then trusts the
    /// cache again.
    async fn connect(&mut self) -> Result<Session, Failure> {
        let (connect, command) = (self.connect_timeout(), self.command_timeout());
        let client = self.pubsub_client(connect).await?;
        let mut conn = if let WatchRoute::Cluster { cluster, .. } = &self.target.route {
            // The stream lives on one node: the cluster client routes there.
            RedisConn::Cluster(bounded(connect, "connect", cluster.get_async_connection()).await?)
        } else {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(connect))
                .set_response_timeout(Some(command));
            RedisConn::Single(
                bounded(
                    connect,
                    "connect",
                    client.get_multiplexed_async_connection_with_config(&config),
                )
                .await?,
            )
        };
        let pubsub = bounded(connect, "connect", client.get_async_pubsub()).await?;
        let (mut sink, messages) = pubsub.split();
        let channels = [
            self.events.as_str(),
            self.counts.as_str(),
            self.heartbeat.as_str(),
        ];
        bounded(command, "SUBSCRIBE", sink.subscribe(&channels[..])).await?;
        let beat = Beat {
            conn: conn.clone(),
            lease: self.target.keys.heartbeat_lease(),
            channel: self.heartbeat.clone(),
            holder: self.holder.clone(),
        };
        let mut session = Session::new(
            messages,
            sink,
            self.options.ping_interval,
            command,
            Some(beat),
        );

        // Cheap to clone (one multiplexed connection): kept for the checks.
        self.plain = Some(conn.clone());
        self.check_restart(&mut conn).await?;
        self.replay(&mut conn).await?;
        self.resync(&mut session).await?;
        self.sink.trusted();
        Ok(session)
    }

    /// The server to subscribe on: the store's, the next seed node of a
    /// cluster (a `PUBLISH` reaches every node), or the master the
    /// sentinels name now.
    async fn pubsub_client(&mut self, connect: Duration) -> Result<redis::Client, Failure> {
        self.attempts = self.attempts.wrapping_add(1);
        match &self.target.route {
            WatchRoute::Cluster { nodes, .. } if !nodes.is_empty() => {
                Ok(nodes[(self.attempts - 1) % nodes.len()].clone())
            }
            WatchRoute::Sentinel(sentinel) => {
                let sentinel = Arc::clone(sentinel);
                bounded(connect, "sentinel", async move {
                    sentinel.lock().await.async_get_client().await
                })
                .await
            }
            _ => Ok(self.target.client.clone()),
        }
    }

    /// Compares the server's `run_id` with the last one seen: a change means
    /// Redis restarted, its generations started again from 0, and the cache
    /// must not stay ahead of it.
    async fn check_restart<C: ConnectionLike + Send>(
        &mut self,
        conn: &mut C,
    ) -> Result<(), Failure> {
        let run_id = match tokio::time::timeout(self.command_timeout(), replay::run_id(conn)).await
        {
            Err(_) => return Err(Failure::new("INFO", "no answer")),
            Ok(Ok(run_id)) => run_id,
            Ok(Err(e)) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                return Err(Failure::new("INFO", e.to_string()));
            }
            // Refused (an ACL without INFO, say): carry on without the check.
            Ok(Err(e)) => {
                if !self.info_refusal_logged {
                    tracing::warn!(error = %e, "watcher: INFO server refused; Redis restarts will not be detected");
                    self.info_refusal_logged = true;
                }
                None
            }
        };
        let Some(run_id) = run_id else { return Ok(()) };
        if self.run_id.as_ref().is_some_and(|old| *old != run_id) {
            tracing::info!(
                %run_id,
                "watcher: another Redis server answers (a restart, or a failover); local cache cleared"
            );
            self.sink.forget_all();
            self.delivered.clear();
            self.last_id = None;
        }
        self.run_id = Some(run_id);
        Ok(())
    }

    /// Reads the transitions stream after the last id read; on the first
    /// connection (or after a restart) only notes its tip.
    async fn replay<C: ConnectionLike + Send>(&mut self, conn: &mut C) -> Result<(), Failure> {
        let command = self.command_timeout();
        let Some(mut after) = self.last_id.clone() else {
            let tip = bounded(command, "XREVRANGE", replay::tip(conn, &self.stream)).await?;
            self.last_id = Some(tip);
            return Ok(());
        };
        let mut read = 0usize;
        for _ in 0..MAX_REPLAY_PAGES {
            let page = bounded(
                command,
                "XREAD",
                replay::read_after(conn, &self.stream, &after),
            )
            .await?;
            let full = page.len() >= PAGE;
            read += page.len();
            for entry in page {
                match entry.msg {
                    Some(msg) => match decode_transition(&msg) {
                        Ok(transition) => self.take_transition(transition).await,
                        Err(error) => self.complaints.skip(&self.stream, &msg, &error),
                    },
                    None => {
                        let error = MessageError::WrongFields {
                            detail: format!("stream entry {} has no `msg` field", entry.id),
                        };
                        self.complaints.skip(&self.stream, b"", &error);
                    }
                }
                after = entry.id;
            }
            self.last_id = Some(after.clone());
            if !full {
                break;
            }
        }
        tracing::debug!(stream = %self.stream, entries = read, "watcher: replayed the transitions stream");
        Ok(())
    }

    /// Runs the resync over the cached agents while still reading the
    /// subscription (so it cannot back up), without trusting the cache yet.
    async fn resync(&mut self, session: &mut Session) -> Result<(), Failure> {
        let mut work = AssertUnwindSafe((self.resync)(self.sink.agents())).catch_unwind();
        loop {
            tokio::select! {
                done = &mut work => {
                    if done.is_err() {
                        tracing::error!("watcher: the resync panicked; carrying on without it");
                    }
                    return Ok(());
                }
                message = session.messages.next() => match message {
                    Some(message) => {
                        session.heard.now();
                        self.take_message(&message, false).await;
                    }
                    None => return Err(Failure::new("resync", "the connection closed")),
                },
                ping = session.pings.recv() => match ping {
                    Some(Ping::Pong) => session.heard.now(),
                    Some(Ping::Dead(failure)) => return Err(failure),
                    None => return Err(Failure::new("PING", "the pinger stopped")),
                },
            }
        }
    }

    /// Reads messages and ping answers until the connection dies; returns why.
    async fn serve(&mut self, session: &mut Session) -> Failure {
        loop {
            tokio::select! {
                message = session.messages.next() => match message {
                    Some(message) => {
                        session.heard.now();
                        self.take_message(&message, true).await;
                    }
                    None => return Failure::new("read", "the connection closed"),
                },
                ping = session.pings.recv() => match ping {
                    Some(Ping::Pong) => {
                        session.heard.now();
                        self.sink.trusted();
                    }
                    Some(Ping::Dead(failure)) => return failure,
                    None => return Failure::new("PING", "the pinger stopped"),
                },
            }
        }
    }

    /// One pub/sub message; `trusted` once setup is over, when a message
    /// also confirms the subscription.
    async fn take_message(&mut self, message: &redis::Msg, trusted: bool) {
        let channel = message.get_channel_name();
        let payload = message.get_payload_bytes();
        if channel == self.events {
            match decode_transition(payload) {
                Ok(transition) => self.take_transition(transition).await,
                Err(error) => self.complaints.skip(channel, payload, &error),
            }
        } else if channel == self.heartbeat {
            // The fleet heartbeat: it only confirms the subscription (below).
        } else if channel == self.counts {
            match decode_counts(payload) {
                Ok(news) => {
                    self.sink
                        .failure_count(&news.agent_id, news.generation, news.failure_count);
                }
                Err(error) => self.complaints.skip(channel, payload, &error),
            }
        } else {
            tracing::debug!(channel, "watcher: message on an unexpected channel ignored");
        }
        if trusted {
            self.sink.trusted();
        }
    }
}
