//! Waits for an event with a bound, never a bare sleep: [`wait_until`] and
//! [`wait_for`] panic naming what did not happen, [`poll_within`] and
//! [`poll_blocking`] hand the timeout back to a caller whose message says
//! more (the last thing it saw, a server's log).

use std::future::Future;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Between two polls of the condition.
const POLL: Duration = Duration::from_millis(10);

/// Polls `f` until it returns `true`; panics naming `what` when `timeout`
/// passes first.
///
/// ## Behavior
///
/// - `f` is called at once, then every 10 ms (tokio time) until it is true.
/// - The bound is wall-clock time, kept by a watchdog thread, so it holds
///   under `tokio::time::pause()` too (where tokio timers would fire early
///   while the runtime waits on Redis I/O), and it also cuts short a poll
///   of `f` that never completes.
///
/// ```ignore
/// wait_until("the circuit opens", Duration::from_secs(2), || {
///     let breaker = breaker.clone();
///     async move { breaker.snapshot(&agent).await.unwrap().state == CircuitState::Open }
/// })
/// .await;
/// ```
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, timeout, || {
        let ready = f();
        async move { ready.await.then_some(()) }
    })
    .await;
}

/// Polls `f` until it returns `Some`, and gives that value; panics naming
/// `what` when `timeout` passes first. Otherwise as [`wait_until`].
///
/// ```ignore
/// let probe = wait_for("the backoff ends and a probe is granted", Duration::from_secs(2), || {
///     async { pod.acquire(&agent).await.ok() }
/// })
/// .await;
/// ```
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_within(timeout, POLL, f)
        .await
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting until {what}"))
}

/// Polls `f` every `every` (tokio time) until it returns `Some`; `None`
/// once `timeout` (wall-clock, as in [`wait_until`]) passes first, for a
/// caller that says itself what went wrong.
pub async fn poll_within<T, F, Fut>(timeout: Duration, every: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    // The watchdog ends as soon as `_done` drops (the sender disconnects).
    let (_done, done_rx) = mpsc::channel::<()>();
    let (expired_tx, expired_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("wait-watchdog".to_owned())
        .spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
                let _ = expired_tx.send(());
            }
        })
        .expect("spawn the wait watchdog thread");
    let poll = async {
        loop {
            if let Some(value) = f().await {
                return value;
            }
            tokio::time::sleep(every).await;
        }
    };
    tokio::select! {
        value = poll => Some(value),
        _ = expired_rx => None,
    }
}

/// [`poll_within`] for code outside a runtime (a child process, a thread):
/// calls `f` at once, then every `every`, until it returns `Some`; `None`
/// once `timeout` has passed.
pub fn poll_blocking<T>(
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return Some(value);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::sleep(every.min(left));
    }
}
