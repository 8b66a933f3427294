//! [`wait_until`]: wait for an event with a bound, never a bare sleep.

use std::future::Future;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

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
    // The watchdog ends as soon as `_done` drops (the sender disconnects).
    let (_done, done_rx) = mpsc::channel::<()>();
    let (expired_tx, expired_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("wait_until-watchdog".to_owned())
        .spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
                let _ = expired_tx.send(());
            }
        })
        .expect("spawn the wait_until watchdog thread");
    let poll = async {
        while !f().await {
            tokio::time::sleep(POLL).await;
        }
    };
    tokio::select! {
        () = poll => {}
        _ = expired_rx => panic!("timed out after {timeout:?} waiting until {what}"),
    }
}
