//! [`FailoverRouter::route_task`]: one task, agents in priority order.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tracing::Instrument;

use super::FailoverRouter;
use super::agents::{AgentInput, validate};
use super::classify::Classify;
use super::error::{AgentReport, AllAgentsFailed, Attempt, RouteError};
use crate::agent_id::AgentId;
use crate::breaker::{Facts, Permit, RejectCause, Rejected};
use crate::model::{CircuitState, Outcome};
use crate::store::FailureRecord;

/// A task served: the value, the agent that served it, and how.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Routed<T> {
    /// What the agent answered.
    pub value: T,
    /// The agent that served the task.
    pub agent: AgentId,
    /// Calls made, this one included (rejections are not calls).
    pub attempts: u32,
    /// How the serving call was recorded: `Success`, `Neutral`, or
    /// `Failure` for a success slower than the slow-call threshold.
    pub outcome: Outcome,
    /// The agents passed over before the serving one (rejected, failed or
    /// timed out), in list order; in panic mode, every other agent.
    pub history: Vec<AgentReport>,
    /// Whether panic mode served the task from an agent whose circuit had
    /// rejected it.
    pub panic_mode: bool,
}

/// What one call came to.
enum Step<T, E> {
    /// Return this value.
    Served(T, Outcome),
    /// Try the next agent.
    Failed(Attempt),
    /// Return this error, without trying the next agent.
    Returned(E),
}

impl<C> FailoverRouter<C> {
    /// Routes one task: calls `task_fn(agent, data.clone())` on the agents in
    /// priority order until one serves it. See the [behavior](FailoverRouter#behavior).
    ///
    /// `agents` may hold `&str`, `String` or [`AgentId`] values (see
    /// [`AgentInput`]); ids already held as `AgentId` are not checked again.
    ///
    /// # Errors
    ///
    /// - [`RouteError::NoAgents`], [`RouteError::DuplicateAgent`],
    ///   [`RouteError::InvalidAgentId`]: a bad list; no call was made.
    /// - [`RouteError::AllAgentsFailed`]: no agent served the task; it says
    ///   what happened to each one.
    /// - [`RouteError::Inner`]: a call's error the classifier did not count
    ///   against the agent.
    pub async fn route_task<A, F, Fut, D, T, E>(
        &self,
        task_id: &str,
        agents: impl IntoIterator<Item = A>,
        task_fn: F,
        data: D,
    ) -> Result<Routed<T>, RouteError<E>>
    where
        A: AgentInput,
        F: Fn(AgentId, D) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        D: Clone,
        E: Display,
        C: Classify<T, E>,
    {
        let agents = validate(task_id, agents)?;
        self.note_agents(&agents);
        self.inner.events.count();
        let span = tracing::info_span!("route_task", task_id, agents = agents.len());
        self.route(task_id, &agents, &task_fn, data)
            .instrument(span)
            .await
    }

    async fn route<F, Fut, D, T, E>(
        &self,
        task_id: &str,
        agents: &[AgentId],
        task_fn: &F,
        data: D,
    ) -> Result<Routed<T>, RouteError<E>>
    where
        F: Fn(AgentId, D) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        D: Clone,
        E: Display,
        C: Classify<T, E>,
    {
        let settings = &self.inner.settings;
        let mut reports: Vec<Attempt> = agents.iter().map(|_| Attempt::NotTried).collect();
        let mut calls = 0;
        for (i, agent) in agents.iter().enumerate() {
            if calls >= settings.max_retries {
                break;
            }
            let permit = match self.inner.breaker.acquire(agent).await {
                Ok(permit) => permit,
                Err(rejected) => {
                    tracing::debug!(agent = %agent, reason = %rejected, "skipped");
                    reports[i] = rejected_attempt(rejected);
                    continue;
                }
            };
            calls += 1;
            match self
                .call(task_id, agent, Some(permit), task_fn, data.clone())
                .await
            {
                Step::Served(value, outcome) => {
                    return Ok(served(value, agents, i, calls, outcome, reports, false));
                }
                Step::Failed(attempt) => reports[i] = attempt,
                Step::Returned(error) => return Err(inner_error(task_id, agent, error)),
            }
        }
        let mut panicked = false;
        if calls == 0
            && settings.panic_mode
            && let Some(i) = panic_pick(&reports)
        {
            let agent = &agents[i];
            tracing::warn!(agent = %agent, "panic mode: every agent rejected, calling the one that reopens soonest");
            panicked = true;
            calls = 1;
            match self.call(task_id, agent, None, task_fn, data).await {
                Step::Served(value, outcome) => {
                    return Ok(served(value, agents, i, calls, outcome, reports, true));
                }
                Step::Failed(attempt) => reports[i] = attempt,
                Step::Returned(error) => return Err(inner_error(task_id, agent, error)),
            }
        }
        let failed = AllAgentsFailed {
            task_id: task_id.to_owned(),
            agents: agents
                .iter()
                .cloned()
                .zip(reports)
                .map(|(agent, attempt)| AgentReport { agent, attempt })
                .collect(),
            calls,
            panic_mode: panicked,
        };
        tracing::warn!(error = %failed, "no agent served the task");
        Err(RouteError::AllAgentsFailed(failed))
    }

    /// Makes one call and settles its permit (none in panic mode: the
    /// outcome is then not recorded in the breaker).
    async fn call<F, Fut, D, T, E>(
        &self,
        task_id: &str,
        agent: &AgentId,
        permit: Option<Permit>,
        task_fn: &F,
        data: D,
    ) -> Step<T, E>
    where
        F: Fn(AgentId, D) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Display,
        C: Classify<T, E>,
    {
        let settings = &self.inner.settings;
        // The slow-call policy and the router's slow-call threshold need
        // the call's duration.
        let started = tokio::time::Instant::now();
        let call = task_fn(agent.clone(), data);
        let result = match settings.attempt_timeout {
            Some(limit) => match tokio::time::timeout(limit, call).await {
                Ok(result) => result,
                Err(_) => {
                    let reason = format!("timed out after {limit:?}");
                    let facts = Facts {
                        slow: self.inner.breaker.is_slow(agent, started.elapsed()),
                        ..Facts::of(Outcome::Failure)
                    };
                    self.charge(task_id, agent, permit, facts, Some(reason))
                        .await;
                    return Step::Failed(Attempt::TimedOut { after: limit });
                }
            },
            None => call.await,
        };
        let verdict = self.inner.classifier.classify(result.as_ref());
        let elapsed = started.elapsed();
        let mut facts = Facts {
            slow: self.inner.breaker.is_slow(agent, elapsed),
            ..Facts::of(verdict)
        };
        if verdict == Outcome::Failure {
            facts.retry_after_ms = self
                .inner
                .classifier
                .retry_after(result.as_ref())
                .map(crate::config::duration_ms);
        }
        let slow = match settings.slow_call_threshold {
            Some(threshold) if verdict == Outcome::Success => {
                (elapsed > threshold).then(|| slow_reason(elapsed, threshold))
            }
            _ => None,
        };
        match result {
            Ok(_) | Err(_) if verdict == Outcome::Failure => {
                let reason = match &result {
                    Ok(_) => "the classifier counted the result as a failure".to_owned(),
                    Err(error) => error.to_string(),
                };
                self.charge(task_id, agent, permit, facts, Some(reason.clone()))
                    .await;
                Step::Failed(Attempt::Failed { reason })
            }
            result => {
                // The router's slow-call threshold is the slow-call rate
                // policy's input when that policy is on: a slow success is
                // then a success and a slow call. Without it, a slow
                // success counts as a failure, as it always has.
                let policy_on = self.slow_call_policy_on();
                facts.slow |= slow.is_some();
                let recorded = if slow.is_some() && !policy_on {
                    Outcome::Failure
                } else {
                    verdict
                };
                facts.outcome = recorded;
                self.charge(task_id, agent, permit, facts, slow).await;
                match result {
                    Ok(value) => Step::Served(value, recorded),
                    Err(error) => Step::Returned(error),
                }
            }
        }
    }

    /// Whether the breaker's slow-call rate policy is on (process-wide).
    fn slow_call_policy_on(&self) -> bool {
        self.inner
            .breaker
            .config()
            .slow_call_rate_threshold
            .is_some()
    }

    /// Settles the permit with `facts` and, for a failure, journals it.
    async fn charge(
        &self,
        task_id: &str,
        agent: &AgentId,
        permit: Option<Permit>,
        facts: Facts,
        failure: Option<String>,
    ) {
        let settle = async {
            if let Some(permit) = permit {
                permit.settle_facts(facts).await;
            }
        };
        let Some(reason) = failure else {
            return settle.await;
        };
        tracing::debug!(agent = %agent, %reason, "call failed");
        let breaker = &self.inner.breaker;
        if breaker.is_degraded() {
            // No store call on the routing path in degraded mode: the
            // failure is logged above, not journaled.
            return settle.await;
        }
        let record = FailureRecord {
            task_id: task_id.to_owned(),
            agent_id: agent.clone(),
            reason,
            time_ms: breaker.clock().now_ms(),
            instance_id: breaker.instance_id().to_owned(),
        };
        let cap = self.inner.settings.failures_cap;
        let journal = self.inner.journal.push_failure(&record, cap);
        let ((), pushed) = tokio::join!(settle, journal);
        if let Err(error) = pushed {
            tracing::warn!(agent = %agent, %error, "could not record the failure in the journal");
        }
    }
}

fn rejected_attempt(rejected: Rejected) -> Attempt {
    Attempt::Rejected {
        state: rejected.state,
        retry_after: rejected.retry_after,
        cause: rejected.cause,
    }
}

/// The agent panic mode calls: the circuit-rejected (open or half-open)
/// agent with the smallest `retry_after`; unknown last, ties in list order.
fn panic_pick(reports: &[Attempt]) -> Option<usize> {
    reports
        .iter()
        .enumerate()
        .filter_map(|(i, attempt)| match attempt {
            Attempt::Rejected {
                state: CircuitState::Open | CircuitState::HalfOpen,
                retry_after,
                cause: RejectCause::Circuit,
            } => Some((retry_after.is_none(), *retry_after, i)),
            _ => None,
        })
        .min()
        .map(|(_, _, i)| i)
}

fn served<T>(
    value: T,
    agents: &[AgentId],
    index: usize,
    calls: u32,
    outcome: Outcome,
    reports: Vec<Attempt>,
    panic_mode: bool,
) -> Routed<T> {
    let history = agents
        .iter()
        .cloned()
        .zip(reports)
        .enumerate()
        .filter(|(i, _)| *i != index && (panic_mode || *i < index))
        .map(|(_, (agent, attempt))| AgentReport { agent, attempt })
        .collect();
    Routed {
        value,
        agent: agents[index].clone(),
        attempts: calls,
        outcome,
        history,
        panic_mode,
    }
}

fn inner_error<E>(task_id: &str, agent: &AgentId, error: E) -> RouteError<E> {
    RouteError::Inner {
        task_id: task_id.to_owned(),
        agent: agent.clone(),
        error,
    }
}

fn slow_reason(elapsed: Duration, threshold: Duration) -> String {
    format!("slow call: took {elapsed:?}, over the {threshold:?} threshold")
}
