//! The two bodies a connection wraps: the request's, which fails past its
//! deadline, and the response's, which tells the connection when it ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::conn::Busy;

/// Boxed error of a body.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body that must arrive whole before `deadline`; past it, the
/// next read fails and `expired` is set.
pub(super) struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    /// Made on the first read that has to wait: most bodies never need it.
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

impl DeadlineBody {
    pub(super) fn new(inner: Incoming, deadline: Instant, expired: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            deadline,
            sleep: None,
            expired,
        }
    }
}

/// The error a late body ends with.
#[derive(Debug)]
pub(super) struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimeout {}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its connection busy until hyper drops it
/// (sent whole, or the client gone).
pub(super) struct TrackedBody {
    inner: axum::body::Body,
    _busy: Busy,
}

impl TrackedBody {
    pub(super) fn new(inner: axum::body::Body, busy: Busy) -> Self {
        Self { inner, _busy: busy }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
