//! [`Quick`]: the future of an operation the pod may finish alone.
//!
//! A cached decision and a locally counted success need no round trip, so
//! their functions decide before returning and hand back a future that is
//! ready at once. A large `async fn` state machine would be built, moved
//! and polled on every call for nothing: on the cached path that cost more
//! than the decision (about 200 instructions of 350 per admitted call, by
//! callgrind). Only an operation that goes to the store boxes its future.

use std::future::{Future, Ready, ready};
use std::pin::Pin;

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
