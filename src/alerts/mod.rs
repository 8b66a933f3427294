//! Alert hooks (feature `service`): transitions POSTed to webhooks.
//!
//! [`Webhooks`] POSTs every transition, as its JSON (the serde form of
//! [`Transition`](crate::Transition), `Content-Type: application/json`),
//! to each configured URL. It runs two ways:
//!
//! - [`Webhooks::spawn_redis`], for `fleet-breaker serve` on a shared Redis
//!   (one server, a Redis Cluster, or a master that Sentinel watches): each
//!   transition is delivered to each URL **once fleet-wide**, however many
//!   instances run, and survives the crash of the instance that was
//!   delivering it.
//! - [`Webhooks::spawn_in_process`], for the embedded store: delivers what one
//!   [`CircuitBreaker`](crate::CircuitBreaker) observes, retrying in the
//!   process.
//!
//! ```no_run
//! use std::time::Duration;
//! use fleet_breaker::RedisStore;
//! use fleet_breaker::alerts::Webhooks;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder("redis://127.0.0.1:6379").build().await?;
//! let hooks = Webhooks::builder(["https://alerts.example.com/breaker"])
//!     .max_tries(5)
//!     .retry_backoff(Duration::from_secs(1), Duration::from_secs(60))
//!     .observer(|url, outcome| println!("{url}: {outcome}"))
//!     .build()?;
//! let handle = hooks.spawn_redis(&store).await?;
//! // ... serve ...
//! handle.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## What a receiver gets
//!
//! - `POST` with the transition JSON as body (unless the webhook has another
//!   [format](WebhookFormat)), e.g.
//!   `{"agent_id":"agent-1","from":"closed","to":"open","generation":4,...}`.
//! - `X-Fleet-Breaker-Delivery`: the delivery id, the same on every try of
//!   one transition to one URL: the stream entry id on Redis
//!   (`1732680000000-0`), `local-<uuid>` in process. Delivery is *at least
//!   once*: a receiver that must not act twice drops ids it has seen.
//! - `X-Fleet-Breaker-Attempt`: the try number, from 1.
//! - Any 2xx answer is success. Anything else (3xx included: redirects are
//!   not followed), a connection error or no answer within the attempt
//!   timeout is a failed try.
//!
//! ## Per-webhook options
//!
//! [`WebhooksBuilder::webhook`] adds a URL with [`WebhookOptions`]:
//!
//! - a **signing secret** (below);
//! - a **filter** ([`WebhookFilter`]): the states transitions go `to` or
//!   come `from`, the agents (ids, `*` for any run of characters). A
//!   transition it leaves out is acknowledged without a POST and counted
//!   as [`DeliveryOutcome::Filtered`] (`outcome="filtered"` in
//!   `/metrics`);
//! - a **format** ([`WebhookFormat`]): the transition JSON (default), a
//!   Slack incoming webhook message `{"text": "..."}`, or a PagerDuty
//!   Events API v2 event: `trigger` when a circuit opens (`open`,
//!   `forced_open`; severity `error`, `warning` when forced), `resolve`
//!   when it closes (`closed`, `forced_closed`), with the dedup key
//!   `fleet-breaker/PREFIX/AGENT`, so one incident per agent. PagerDuty is
//!   not sent transitions to `half_open` (counted as filtered). The
//!   trigger's `payload` has `summary`, `source` (the agent), `severity`,
//!   `timestamp` (RFC 3339), `component` (the prefix) and `custom_details`
//!   (the transition JSON).
//!
//! Retries, dead letters (which keep the transition JSON, whatever the
//! format) and once-per-fleet delivery are the same for every option.
//!
//! ## Signatures
//!
//! With a secret (at least [`MIN_SECRET_LEN`] bytes), every POST carries
//!
//! - `X-Fleet-Breaker-Timestamp: T` ([`TIMESTAMP_HEADER`]): when it was
//!   signed, Unix seconds (each try is signed anew);
//! - `X-Fleet-Breaker-Signature: v1=HEX` ([`SIGNATURE_HEADER`]): the
//!   lowercase hex HMAC-SHA256 under the secret of `T`, a `.`, and the
//!   body's exact bytes ([`signature`]).
//!
//! A receiver verifies it by recomputing HMAC-SHA256(secret, `T.BODY`)
//! over the raw body (before any JSON parsing), comparing it with the hex
//! after `v1=` **in constant time**, and refusing the request when `T` is
//! more than 5 minutes from its own clock (a replayed request). To rotate
//! a secret, accept either of two for a while. In Python:
//!
//! ```text
//! import hmac, hashlib, time
//! def verify(secret: bytes, headers, body: bytes) -> bool:
//!     t = headers["X-Fleet-Breaker-Timestamp"]
//!     sig = headers["X-Fleet-Breaker-Signature"].removeprefix("v1=")
//!     want = hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
//!     return hmac.compare_digest(want, sig) and abs(time.time() - int(t)) <= 300
//! ```
//!
//! ## Redis layout
//!
//! Needs Redis 6.2 or later (`XPENDING ... IDLE`). Besides the store's keys
//! (see [`Keys`](crate::store::Keys)):
//!
//! | key | type | what |
//! |---|---|---|
//! | `PREFIX:transitions` | stream (the store's) | one consumer group per URL: `webhook:URL` ([`group_name`]), created with `XGROUP CREATE ... $ MKSTREAM` (made again after a flush: see below) |
//! | `PREFIX:webhooks:dead` | stream, `MAXLEN ~` 10,000 | transitions given up on ([`dead_letter_key`]): fields `url`, `id` (the transition's entry id), `msg` (its JSON), `tries`, `error` (the last one) |
//!
//! In `URL`, a password is shown as `set` (in group names, dead letters,
//! logs, stats and metrics alike).
//!
//! The key names are the same on a Redis Cluster. There the two keys sit
//! in different slots (unless `PREFIX` holds a hash tag), where one `MULTI`
//! cannot span them, so on a cluster a dead letter is written with `XADD`,
//! then acknowledged with `XACK`: two commands. Should the instance crash
//! or lose Redis between the two, the entry stays pending and is
//! dead-lettered a second time ("its last try was interrupted"); it is
//! never POSTed again.
//!
//! ## Behavior (Redis)
//!
//! - One task per URL, on a Redis connection of its own (reads block; see
//!   below for a cluster and Sentinel), reads its group with
//!   `XREADGROUP ... BLOCK` (the poll interval) under this instance's
//!   consumer name. A group created for a new URL starts at the stream's
//!   end: history is not replayed. A URL failing never holds up another,
//!   nor sends twice to one that works.
//! - A 2xx is acknowledged (`XACK`). A failed try leaves the entry pending;
//!   it is tried again after the backoff (base, doubled per try, capped),
//!   the number of tries being the group's delivery count, so it holds
//!   across instances. After `max_tries` failed tries the entry is written
//!   to the dead letters and acknowledged in one `MULTI` (on a cluster, in
//!   two commands: see the layout), and counted as dead-lettered.
//! - An entry pending with another consumer for longer than the reclaim
//!   idle time (an instance that crashed or hangs) is taken over with
//!   `XCLAIM` and tried by this one. The reclaim time must exceed the
//!   attempt timeout, so a running attempt is never taken over. If the
//!   crashed instance had started the last try, the entry is dead-lettered
//!   with the error "its last try was interrupted".
//! - An entry that is not a transition (no `msg` field, not JSON, wrong
//!   fields; decoded as strictly as the watcher does) is logged at WARN,
//!   acknowledged and never POSTed.
//! - Every Redis command is bounded by the store's timeout, at least 1 s.
//!   When Redis fails the task reconnects with backoff (100 ms to 5 s) and
//!   creates its group again if Redis lost it.
//! - Each task remembers the newest stream id it knows (the stream's tip
//!   when it first made the group, then each entry it reads). When it makes
//!   its group again and the stream was flushed or deleted since (`FLUSHALL`,
//!   `DEL`, a restart without persistence: the stream is missing, empty, or
//!   its oldest entry is newer than that id), the group starts after that
//!   id: the transitions made before the task noticed the loss are
//!   delivered, none is skipped. A group destroyed on a stream that kept
//!   its entries starts at the stream's end, as a new one.
//! - On a Redis Cluster, each task's connection is a cluster connection
//!   of its own (from a cluster client on the store's seed nodes, with no
//!   response timeout: the commands are bounded one by one). It sends the
//!   stream commands to the master that owns `PREFIX:transitions` and the
//!   dead letters' `XADD` to the owner of theirs, and follows `MOVED` and
//!   a failover; a command that fails or goes unanswered ends the
//!   connection, and the next one reads the slot map again.
//! - Through Sentinel, every connection (the first and each reconnection)
//!   starts by asking the sentinels for the current master, so delivery
//!   follows a failover: the old master's connection fails, and the task
//!   reconnects, with the backoff above, to the promoted replica once the
//!   sentinels name it. A group the new master lacks (not yet replicated
//!   when the old one died) is created again at the stream's end;
//!   transitions the old master took but never replicated are lost with
//!   it, deliveries it acknowledged but did not replicate are made again.
//! - The stream is capped by the store: an entry trimmed before it could be
//!   delivered is dropped from the group.
//! - Each instance needs a consumer name of its own
//!   ([`WebhooksBuilder::consumer`]). A group outlives the URL's removal
//!   from the configuration; `XGROUP DESTROY PREFIX:transitions webhook:URL`
//!   removes it.
//!
//! ## Files
//!
//! - `builder.rs`: [`WebhooksBuilder`], [`Webhooks`], the defaults.
//! - `endpoint.rs`: URL checks and one POST attempt.
//! - `options.rs`: [`WebhookOptions`], [`WebhookFilter`], [`WebhookFormat`].
//! - `payload.rs`: the Slack and PagerDuty bodies, [`signature`].
//! - `fleet.rs`: [`Webhooks::spawn_redis`], the names of the group and the
//!   dead-letter stream.
//! - `consumer.rs`: the delivery task of one URL on Redis.
//! - `link.rs`: how a task reaches Redis (one server, a cluster, the master
//!   Sentinel names) and the connection it gets.
//! - `stream.rs`: the Redis stream commands; `reply.rs`: their replies.
//! - `in_process.rs`: [`Webhooks::spawn_in_process`].
//! - `handle.rs`: [`WebhookHandle`].
//! - `stats.rs`: [`EndpointStats`], [`DeliveryOutcome`].
//! - `error.rs`: [`AlertsError`].

mod builder;
mod consumer;
mod endpoint;
mod error;
mod fleet;
mod handle;
mod in_process;
mod options;
mod payload;
mod stats;

pub use builder::{
    DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, DEFAULT_DEAD_LETTER_MAX_LEN, DEFAULT_MAX_TRIES,
    DEFAULT_POLL_INTERVAL, DEFAULT_RECLAIM_IDLE, DEFAULT_TIMEOUT, Webhooks, WebhooksBuilder,
};
pub use endpoint::{ATTEMPT_HEADER, DELIVERY_HEADER};
pub use error::AlertsError;
pub use fleet::{dead_letter_key, group_name};
pub use handle::WebhookHandle;
pub use in_process::IN_PROCESS_QUEUE;
pub use options::{MIN_SECRET_LEN, WebhookFilter, WebhookFormat, WebhookOptions};
pub use payload::{SIGNATURE_HEADER, TIMESTAMP_HEADER, signature};
pub use stats::{DeliveryOutcome, EndpointStats};
