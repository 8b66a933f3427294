//! [`serve`]: the HTTP/1.1 listener of the service, with the limits a
//! process facing many clients needs, and a shutdown that ends on time.
//!
//! ```no_run
//! use fleet_breaker::CircuitBreaker;
//! use fleet_breaker::http::{self, AppState, ServeOptions};
//! use fleet_breaker::router::FailoverRouter;
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let state = AppState::new(FailoverRouter::new(CircuitBreaker::in_memory()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let closing = state.clone();
//! let stop = async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     closing.close_streams();
//! };
//! http::serve(listener, http::router(state), ServeOptions::default(), stop).await;
//! # Ok(()) }
//! ```
//!
//! ## Behavior
//!
//! - At most [`ServeOptions::max_connections`] connections are served at
//!   once, SSE streams included. One more takes the place of the oldest
//!   connection that is waiting for a request (held half-sent, silent or
//!   idle), which is closed; so clients that hold connections without
//!   sending cannot keep `/healthz` or anyone else out. When every
//!   connection is busy sending a response, the new one is answered at once
//!   with a `503`, a short JSON body and `Connection: close`, written without
//!   reading its request, and closed: `accept` never runs the process out of
//!   file descriptors, and the connections already open keep their answers.
//! - A connection has [`header_read_timeout`](ServeOptions::header_read_timeout)
//!   from its opening (or from the first byte of its next request) to send
//!   a request line and headers, then
//!   [`body_read_timeout`](ServeOptions::body_read_timeout) from the headers
//!   to send the whole body (an unfinished body gets a `408` and the
//!   connection is closed). Between requests, a keep-alive connection
//!   waits at most [`idle_timeout`](ServeOptions::idle_timeout). A response
//!   being sent (an SSE stream) is not idle, however long it lasts.
//! - When `shutdown` resolves, the listener closes at once; idle
//!   connections close, busy ones finish their response within
//!   [`shutdown_grace`](ServeOptions::shutdown_grace), and whatever is still
//!   open then is closed. `serve` returns after that. An SSE stream ends when
//!   its [`AppState::close_streams`](super::AppState::close_streams) is called
//!   (do it in `shutdown`), else it is cut at the end of the grace.
//! - Errors of one connection (a client gone, a malformed request) end that
//!   connection only; an error of `accept` (out of file descriptors for
//!   other reasons) is logged and retried after a short pause.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

mod body;
mod conn;
mod shed;

use conn::Activity;

/// Pause after an `accept` error other than a refused or reset connection.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The limits of [`serve`]; see the module docs of `http::server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Most connections served at once, SSE streams included (default
    /// 10,000; at least 1). Keep it under the process's open-file limit
    /// (`ulimit -n`) less a hundred or so for Redis and logs.
    pub max_connections: usize,
    /// Time to send a request's line and headers, from the connection's
    /// opening or from the first byte of the request (default 10 s).
    pub header_read_timeout: Duration,
    /// Time to send a request's whole body, from its headers (default 10 s).
    pub body_read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request
    /// (default 60 s).
    pub idle_timeout: Duration,
    /// After the shutdown signal, the time responses in flight have to end
    /// before their connections are closed (default 1 s).
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(1),
        }
    }
}

/// Serves `app` on `listener` within `options` until `shutdown` resolves,
/// then shuts down within [`ServeOptions::shutdown_grace`]; see the
/// module docs of `http::server`.
pub async fn serve<F>(listener: TcpListener, app: Router, options: ServeOptions, shutdown: F)
where
    F: Future<Output = ()> + Send,
{
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let shedding = Arc::new(Semaphore::new(shed::MAX_LINGERING));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut open = Open::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let activity = Arc::new(Activity::new());
                    let connection = conn::Connection::new(app.clone(), options, stop_rx.clone());
                    match Arc::clone(&slots).try_acquire_owned() {
                        Ok(slot) => {
                            tasks.spawn(connection.run(stream, Arc::clone(&activity), slot));
                        }
                        Err(_) if open.evict_one() => {
                            // The evicted connection's slot leaves the cap
                            // when it ends; this one takes a new one now.
                            slots.add_permits(1);
                            match Arc::clone(&slots).try_acquire_owned() {
                                Ok(slot) => {
                                    tasks.spawn(connection.run(stream, Arc::clone(&activity), slot));
                                }
                                Err(_) => {
                                    shed::refuse(stream, &shedding, &mut tasks);
                                    continue;
                                }
                            }
                        }
                        Err(_) => {
                            shed::refuse(stream, &shedding, &mut tasks);
                            continue;
                        }
                    }
                    open.push(&activity);
                }
                Err(error) => on_accept_error(&error).await,
            },
        }
    }
    drop(listener);
    stop_tx.send_replace(true);
    let drained = tokio::time::timeout(options.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            connections = tasks.len(),
            grace = ?options.shutdown_grace,
            "closing the connections still open at the end of the shutdown grace"
        );
        tasks.shutdown().await;
    }
}

/// The connections served, oldest first, to evict one waiting for a
/// request when the cap is reached.
#[derive(Debug, Default)]
struct Open {
    queue: VecDeque<Weak<Activity>>,
    /// The length at which closed connections are dropped from the queue.
    prune_at: usize,
}

impl Open {
    fn push(&mut self, activity: &Arc<Activity>) {
        // Drop the closed ones now and then, in one pass: amortized O(1).
        if self.queue.len() >= self.prune_at {
            self.queue.retain(|weak| weak.strong_count() > 0);
            self.prune_at = (2 * self.queue.len()).max(1024);
        }
        self.queue.push_back(Arc::downgrade(activity));
    }

    /// Tells the oldest connection that is waiting for a request to close;
    /// whether there was one. Busy ones (a response being sent, an SSE
    /// stream) are kept and move to the back.
    fn evict_one(&mut self) -> bool {
        for _ in 0..self.queue.len() {
            let Some(weak) = self.queue.pop_front() else {
                return false;
            };
            let Some(activity) = weak.upgrade() else {
                continue;
            };
            if activity.evict_if_waiting() {
                return true;
            }
            self.queue.push_back(weak);
        }
        false
    }
}

/// A refused or reset connection is the client's business; anything else
/// (out of file descriptors) is logged, and `accept` pauses a moment.
async fn on_accept_error(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed; pausing before the next accept");
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}
