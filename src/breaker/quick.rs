//! The futures of operations the pod may finish alone.
//!
//! [`Quick`], for settling: a success on a circuit the cache trusts closed
//! and clean is counted locally, with no round trip, so a permit's settling
//! counts it before returning and hands back a future that is ready at once;
//! only an outcome that goes to the store boxes its future. Measured in
//! alternating runs of `cargo bench --bench breaker` (docs/operations.md,
//! "Second pass"): `acquire` + `success` on a cached closed circuit took 73
//! and 75 ns with `async fn` settling, 60 and 60 ns with this.
//!
//! [`Decide`], for `acquire`: a future that decides on its first poll, as an
//! `async fn` would. Neither an `async fn` nor a `Quick` (a `Ready` holding
//! the decision): the first's `poll` is not inlined across crates, and both
//! hand the permit over through memory in pieces of different widths, which
//! the caller's wide reads stalled on (store forwarding, seen by `perf
//! annotate`). `Decide`'s `poll` is generic, inlined into the caller's, and
//! returns the decision in registers. Measured with `cargo bench --bench
//! breaker -- handle` ("Fifth pass"): a cached admit and its success through
//! a handle took 22 ns with an `async fn`, 24 ns with a `Ready`, 12 to 13 ns
//! with this; the same calls without a future (`try_acquire`,
//! `try_success`) take 8.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::Either;

/// Ready at once (the pod decided), or the store's round trip, boxed.
pub(crate) type Quick<'a, T> = Either<Ready<T>, Pin<Box<dyn Future<Output = T> + Send + 'a>>>;

/// Decided without the store.
pub(crate) fn done<'a, T>(value: T) -> Quick<'a, T> {
    Either::Left(ready(value))
}

/// Decided by `work`, which goes to the store.
pub(crate) fn later<'a, T>(work: impl Future<Output = T> + Send + 'a) -> Quick<'a, T> {
    Either::Right(Box::pin(work))
}

/// The store's round trip, boxed.
pub(crate) type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A future that runs `decide` on its first poll: the pod's decision, or
/// the round trip that asks the store, which it then polls.
pub(crate) struct Decide<'a, T, D> {
    /// `Some` until the first poll.
    decide: Option<D>,
    /// The store's round trip, once the pod could not decide.
    store: Option<Boxed<'a, T>>,
}

/// A [`Decide`] future of `decide`.
#[inline]
pub(crate) fn decide<'a, T, D>(decide: D) -> Decide<'a, T, D>
where
    D: FnOnce() -> Result<T, Boxed<'a, T>> + Unpin,
{
    Decide {
        decide: Some(decide),
        store: None,
    }
}

impl<'a, T, D> Future for Decide<'a, T, D>
where
    D: FnOnce() -> Result<T, Boxed<'a, T>> + Unpin,
{
    type Output = T;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(decide) = self.decide.take() {
            match decide() {
                Ok(decided) => return Poll::Ready(decided),
                Err(store) => self.store = Some(store),
            }
        }
        // Polled again after it was ready (a caller's bug), it stays
        // pending, which the `Future` contract allows, rather than panic as
        // an `async fn` (or the store's finished round trip) would.
        let Some(store) = &mut self.store else {
            return Poll::Pending;
        };
        let polled = store.as_mut().poll(cx);
        if polled.is_ready() {
            self.store = None;
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll};

    use futures::task::noop_waker_ref;

    use super::{Boxed, decide};

    #[test]
    fn decides_on_the_first_poll_then_polls_the_store_and_never_panics_after() {
        let mut cx = Context::from_waker(noop_waker_ref());
        let asked = Cell::new(0);
        let mut local = pin!(decide(|| -> Result<u8, Boxed<'_, u8>> {
            asked.set(asked.get() + 1);
            Ok(1)
        }));
        assert_eq!(asked.get(), 0, "made, not yet polled: no decision");
        assert_eq!(local.as_mut().poll(&mut cx), Poll::Ready(1));
        assert_eq!(local.as_mut().poll(&mut cx), Poll::Pending, "polled again");
        assert_eq!(asked.get(), 1);

        let mut store = pin!(decide(|| -> Result<u8, Boxed<'_, u8>> {
            Err(Box::pin(async { 2 }))
        }));
        assert_eq!(store.as_mut().poll(&mut cx), Poll::Ready(2));
        assert_eq!(store.as_mut().poll(&mut cx), Poll::Pending, "polled again");
    }
}
