//! [`CircuitBreakerLayer`] and [`CircuitBreakerService`]: one guarded agent.

use std::fmt::Display;
use std::task::{Context, Poll};

use super::BoxFuture;
use crate::agent_id::AgentId;
use crate::breaker::{CallError, CircuitBreaker};

/// A [`Layer`](::tower::Layer) that wraps a service in a
/// [`CircuitBreakerService`] for one agent.
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer {
    breaker: CircuitBreaker,
    agent: AgentId,
}

impl CircuitBreakerLayer {
    /// Guards the wrapped services with `agent`'s circuit in `breaker`.
    #[must_use]
    pub fn new(breaker: CircuitBreaker, agent: AgentId) -> Self {
        Self { breaker, agent }
    }
}

impl<S> ::tower::Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService::new(inner, self.breaker.clone(), self.agent.clone())
    }
}

/// A service whose calls go through one agent's circuit.
///
/// ## Behavior
///
/// - `poll_ready` is the inner service's (its error becomes
///   [`CallError::Inner`]); the breaker is not asked there, since many
///   combinators treat a readiness error as the service's death.
/// - `call` asks the breaker for a permit first: a rejection is
///   [`CallError::Rejected`] and the inner service is not called. Otherwise
///   the inner `Ok` is a success and `Err` a failure.
/// - Dropping the response future before it completes leaves the permit
///   neutral, as with [`CircuitBreaker::call`].
/// - The inner service is cloned per call (the ready clone is the one
///   called), as tower's own middleware does; keep it cheap to clone.
#[derive(Debug, Clone)]
pub struct CircuitBreakerService<S> {
    inner: S,
    breaker: CircuitBreaker,
    agent: AgentId,
}

impl<S> CircuitBreakerService<S> {
    /// Guards `inner` with `agent`'s circuit in `breaker`.
    pub fn new(inner: S, breaker: CircuitBreaker, agent: AgentId) -> Self {
        Self {
            inner,
            breaker,
            agent,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The guarded agent.
    pub fn agent(&self) -> &AgentId {
        &self.agent
    }
}

impl<S, Req> ::tower::Service<Req> for CircuitBreakerService<S>
where
    S: ::tower::Service<Req> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Display + Send + 'static,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = CallError<S::Error>;
    type Future = BoxFuture<Result<S::Response, CallError<S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(CallError::Inner)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // Call the clone that was driven to readiness; keep a fresh one.
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        let breaker = self.breaker.clone();
        let agent = self.agent.clone();
        Box::pin(async move {
            let permit = breaker.acquire(&agent).await.map_err(CallError::Rejected)?;
            match ready.call(request).await {
                Ok(response) => {
                    permit.success().await;
                    Ok(response)
                }
                Err(error) => {
                    permit.failure(error.to_string()).await;
                    Err(CallError::Inner(error))
                }
            }
        })
    }
}
