//! One poll of a future, inside the runtime, with no waker: the fast path
//! of a decision the local cache or the embedded store makes at once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use fleet_breaker::breaker::Rejected;
use fleet_breaker::{AgentId, CircuitBreaker, Permit};

use crate::runtime;

/// A boxed future the runtime can finish.
pub(crate) type Pending<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Polls `fut` once within the runtime's context: its output if it is
/// ready, else the future itself, to be finished on the runtime (every
/// future registers a fresh waker on each poll, so the real poll that
/// follows is not lost).
pub(crate) fn now_or_later<T>(
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, Pending<T>> {
    let mut fut: Pending<T> = Box::pin(fut);
    let _guard = runtime().enter();
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(value) => Ok(value),
        Poll::Pending => Err(fut),
    }
}

/// A permit for `agent`: decided at once where the pod decides alone
/// (`try_acquire`: no future, no allocation), else one poll of `acquire`.
pub(crate) fn acquire_now(
    breaker: &CircuitBreaker,
    agent: &AgentId,
) -> Result<Result<Permit, Rejected>, Pending<Result<Permit, Rejected>>> {
    if let Some(decided) = breaker.try_acquire(agent) {
        return Ok(decided);
    }
    let (breaker, agent) = (breaker.clone(), agent.clone());
    now_or_later(async move { breaker.acquire(&agent).await })
}
