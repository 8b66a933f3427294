//! [`Quick`]: the future of an operation the pod may finish alone.
//!
//! A success on a circuit the cache trusts closed and clean is counted
//! locally, with no round trip, so [`Permit`](super::Permit)'s settling
//! counts it before returning and hands back a future that is ready at once;
//! only an outcome that goes to the store boxes its future. Measured in
//! alternating runs of `cargo bench --bench breaker` (docs/operations.md,
//! "Second pass"): `acquire` + `success` on a cached closed circuit took 73
//! and 75 ns with `async fn` settling, 60 and 60 ns with this. `acquire`
//! itself and the handle's methods stay `async fn`: the same shape there
//! measured no faster on a closed circuit and slower on a rejection (41 and
//! 42 ns as `async fn`, 47 and 52 ns as this).

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
