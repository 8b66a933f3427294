//! One connection: hyper's HTTP/1.1 state machine, a watchdog that closes
//! it when it waits too long for a request, and its part in the shutdown.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use tokio::time::Instant;

use super::ServeOptions;
use super::body::{DeadlineBody, TrackedBody};

/// The longest the watchdog sleeps before looking again.
const MAX_CHECK: Duration = Duration::from_secs(1);

/// A connection about to be served.
pub(super) struct Connection {
    app: Router,
    options: ServeOptions,
    stop: watch::Receiver<bool>,
}

impl Connection {
    pub(super) fn new(app: Router, options: ServeOptions, stop: watch::Receiver<bool>) -> Self {
        Self { app, options, stop }
    }

    /// Serves `stream` until it ends, times out, is evicted through
    /// `activity` or the server stops; `slot` is its place under the
    /// connection cap, freed on return (or dropped from the cap when the
    /// connection was evicted: the server added one for its successor).
    pub(super) async fn run(
        self,
        stream: TcpStream,
        activity: Arc<Activity>,
        slot: OwnedSemaphorePermit,
    ) {
        let _slot = Slot {
            permit: Some(slot),
            activity: Arc::clone(&activity),
        };
        let Self {
            app,
            options,
            mut stop,
        } = self;
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Watched {
            stream,
            activity: Arc::clone(&activity),
        });
        let service = hyper::service::service_fn({
            let activity = Arc::clone(&activity);
            move |request| {
                handle(
                    app.clone(),
                    Arc::clone(&activity),
                    options.body_read_timeout,
                    request,
                )
            }
        });
        let mut builder = http1::Builder::new();
        // Ours instead (the watchdog below): hyper's also bounds the wait
        // between two requests, which the idle timeout does.
        builder.header_read_timeout(None);
        let connection = builder.serve_connection(io, service);
        let mut connection = std::pin::pin!(connection);
        let recheck = MAX_CHECK
            .min(options.header_read_timeout)
            .min(options.idle_timeout);
        let mut stopping = false;
        loop {
            let check = activity
                .deadline(&options)
                .unwrap_or_else(|| Instant::now() + recheck);
            tokio::select! {
                ended = connection.as_mut() => {
                    if let Err(error) = ended {
                        tracing::debug!(%error, "a connection ended with an error");
                    }
                    return;
                }
                () = tokio::time::sleep_until(check) => {
                    if activity.deadline(&options).is_some_and(|at| at <= Instant::now()) {
                        tracing::debug!("closing a connection that waited too long for a request");
                        return;
                    }
                }
                () = activity.evicted.notified() => {
                    // Unless a request arrived meanwhile.
                    if activity.deadline(&options).is_some() {
                        tracing::debug!("closing a connection waiting for a request: the cap is reached");
                        return;
                    }
                }
                _ = stop.wait_for(|stop| *stop), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Runs one request through `app`: its body bounded by `body_timeout`, its
/// response keeping the connection busy until sent.
async fn handle(
    mut app: Router,
    activity: Arc<Activity>,
    body_timeout: Duration,
    request: Request<Incoming>,
) -> Result<Response<TrackedBody>, Infallible> {
    let busy = Busy::start(activity);
    let expired = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + body_timeout;
    let request = request.map(|body| DeadlineBody::new(body, deadline, Arc::clone(&expired)));
    let response = match std::future::poll_fn(|cx| {
        tower_service::Service::<Request<DeadlineBody>>::poll_ready(&mut app, cx)
    })
    .await
    {
        Ok(()) => match tower_service::Service::call(&mut app, request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(never) => match never {},
    };
    let response = if expired.load(Ordering::Acquire) {
        late_body(body_timeout)
    } else {
        response
    };
    Ok(response.map(|body| TrackedBody::new(body, busy)))
}

/// The answer to a request whose body did not arrive in time.
fn late_body(timeout: Duration) -> Response<axum::body::Body> {
    let body = serde_json::json!({
        "error": format!("the request body did not arrive within {timeout:?}")
    })
    .to_string();
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// What a connection is doing, for its watchdog.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request's headers since then (opened, or first byte).
    Head(Instant),
    /// Between two requests since then, nothing received.
    Idle(Instant),
    /// Requests in flight (responses not yet sent).
    Busy(usize),
}

/// The phase of one connection, moved by its reads and its requests.
#[derive(Debug)]
pub(super) struct Activity {
    phase: Mutex<Phase>,
    /// Told to close, to make room for a new connection.
    evicted: Notify,
    /// Whether it was evicted, whether it ended: one lock, so that a
    /// connection is evicted only while it runs.
    fate: Mutex<Fate>,
}

#[derive(Debug, Default)]
struct Fate {
    evicted: bool,
    ended: bool,
}

impl Activity {
    pub(super) fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Head(Instant::now())),
            evicted: Notify::new(),
            fate: Mutex::new(Fate::default()),
        }
    }

    /// Tells the connection to close if it runs and is waiting for a
    /// request (not sending a response); whether it did. Its slot under the
    /// cap is then dropped when it ends, and the caller adds one.
    pub(super) fn evict_if_waiting(&self) -> bool {
        let mut fate = self.fate.lock().unwrap_or_else(PoisonError::into_inner);
        if fate.ended || fate.evicted {
            return false;
        }
        let phase = *self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(phase, Phase::Busy(_)) {
            return false;
        }
        fate.evicted = true;
        self.evicted.notify_one();
        true
    }

    /// The connection ends; whether it had been evicted.
    fn end(&self) -> bool {
        let mut fate = self.fate.lock().unwrap_or_else(PoisonError::into_inner);
        fate.ended = true;
        fate.evicted
    }

    fn edit(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        *phase = f(*phase);
    }

    /// Bytes arrived: an idle connection starts a request.
    fn received(&self) {
        self.edit(|phase| match phase {
            Phase::Idle(_) => Phase::Head(Instant::now()),
            other => other,
        });
    }

    /// When the connection is to be closed, unless it is busy.
    fn deadline(&self, options: &ServeOptions) -> Option<Instant> {
        match *self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            Phase::Head(since) => Some(since + options.header_read_timeout),
            Phase::Idle(since) => Some(since + options.idle_timeout),
            Phase::Busy(_) => None,
        }
    }
}

/// A connection's place under the cap: given back when it ends, or
/// dropped from the cap when it was evicted (its successor got a new one).
struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    activity: Arc<Activity>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.activity.end()
            && let Some(permit) = self.permit.take()
        {
            permit.forget();
        }
    }
}

/// One request in flight on its connection, until dropped.
#[derive(Debug)]
pub(super) struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: Arc<Activity>) -> Self {
        activity.edit(|phase| match phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.edit(|phase| match phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }
}

/// The socket, telling [`Activity`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.received();
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
