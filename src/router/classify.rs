//! Outcome classifiers: what a call's result says about the agent.

use std::time::Duration;

use crate::model::Outcome;

/// Decides what a call's result says about the agent that answered:
/// [`Outcome::Success`], [`Outcome::Failure`] or [`Outcome::Neutral`].
///
/// A closure `Fn(Result<&T, &E>) -> Outcome` is a classifier:
///
/// ```
/// use fleet_breaker::Outcome;
/// # #[derive(Debug)] struct HttpError { status: u16 }
/// // The caller's own mistakes (4xx) say nothing about the agent.
/// let classifier = |result: Result<&String, &HttpError>| match result {
///     Ok(_) => Outcome::Success,
///     Err(e) if (400..500).contains(&e.status) => Outcome::Neutral,
///     Err(_) => Outcome::Failure,
/// };
/// # let _ = fleet_breaker::router::FailoverRouter::builder(
/// #     fleet_breaker::CircuitBreaker::in_memory()).classifier(classifier);
/// ```
///
/// What the router does with each verdict is set out on
/// [`FailoverRouter`](super::FailoverRouter).
pub trait Classify<T, E>: Send + Sync {
    /// The verdict on one result.
    fn classify(&self, result: Result<&T, &E>) -> Outcome;

    /// For a result classified as a failure: how long the agent asked not
    /// to be called (an HTTP 429 or 503 with `Retry-After`). `Some` opens
    /// the agent's circuit fleet-wide at once for at least that long (at
    /// most `max_backoff`), whatever the trip policies say. Default: `None`.
    fn retry_after(&self, result: Result<&T, &E>) -> Option<Duration> {
        let _ = result;
        None
    }
}

/// The default classifier: `Ok` is a success, `Err` a failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultClassifier;

impl<T, E> Classify<T, E> for DefaultClassifier {
    fn classify(&self, result: Result<&T, &E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

impl<T, E, F> Classify<T, E> for F
where
    F: Fn(Result<&T, &E>) -> Outcome + Send + Sync,
{
    fn classify(&self, result: Result<&T, &E>) -> Outcome {
        self(result)
    }
}
