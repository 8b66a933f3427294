//! [`FailoverService`]: several agents behind one service, in priority order.

use std::fmt::{self, Display};
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use super::BoxFuture;
use crate::agent_id::AgentId;
use crate::router::{Classify, DefaultClassifier, FailoverRouter, RouteError, Routed};

/// A service that routes each request through a [`FailoverRouter`] to the
/// first of its agents that serves it.
///
/// The inner service takes `(AgentId, Request)`: one client that can reach
/// every agent (a connection pool, a gRPC channel per agent looked up by id).
///
/// ## Behavior
///
/// - Each request is one [`route_task`](FailoverRouter::route_task), with a
///   task id `tower-N` (N counts the requests of this service and its
///   clones) and the request cloned per attempt.
/// - `poll_ready` is always ready: readiness of the inner service is awaited
///   per attempt, inside the route (its error counts against that agent).
/// - The response is the [`Routed`] value, so the caller sees which agent
///   served; errors are [`RouteError`].
pub struct FailoverService<S, C = DefaultClassifier> {
    inner: S,
    router: FailoverRouter<C>,
    agents: Arc<[AgentId]>,
    requests: Arc<AtomicU64>,
}

impl<S: Clone, C> Clone for FailoverService<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            router: self.router.clone(),
            agents: Arc::clone(&self.agents),
            requests: Arc::clone(&self.requests),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for FailoverService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailoverService")
            .field("inner", &self.inner)
            .field("router", &self.router)
            .field("agents", &self.agents)
            .finish_non_exhaustive()
    }
}

impl<S, C> FailoverService<S, C> {
    /// Routes requests for `inner` over `agents`, in priority order.
    ///
    /// The list is checked on each call, like `route_task`'s: an empty or
    /// repeating list answers every request with an input error.
    pub fn new(inner: S, router: FailoverRouter<C>, agents: impl Into<Arc<[AgentId]>>) -> Self {
        Self {
            inner,
            router,
            agents: agents.into(),
            requests: Arc::new(AtomicU64::new(0)),
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
}

impl<S, C, Req> ::tower::Service<Req> for FailoverService<S, C>
where
    S: ::tower::Service<(AgentId, Req)> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Display + Send + 'static,
    C: Classify<S::Response, S::Error> + 'static,
    Req: Clone + Send + 'static,
{
    type Response = Routed<S::Response>;
    type Error = RouteError<S::Error>;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        Box::pin(async move {
            let task_id = format!("tower-{n}");
            let task_fn = |agent: AgentId, request: Req| {
                let mut service = this.inner.clone();
                async move {
                    poll_fn(|cx| service.poll_ready(cx)).await?;
                    service.call((agent, request)).await
                }
            };
            this.router
                .route_task(&task_id, this.agents.iter(), task_fn, request)
                .await
        })
    }
}
