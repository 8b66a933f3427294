//! What a route answers when no agent served the task, and the router's
//! configuration errors.

use std::fmt;
use std::time::Duration;

use crate::agent_id::{AgentId, AgentIdError};
use crate::breaker::RejectCause;
use crate::model::CircuitState;

/// What happened to one agent of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attempt {
    /// The breaker refused the call: the agent was skipped at once, and this
    /// did not count as an attempt.
    Rejected {
        /// The state that refused it.
        state: CircuitState,
        /// When asking again may succeed, where that is known.
        retry_after: Option<Duration>,
        /// Why: the circuit, or the store being unreachable under `FailClosed`.
        cause: RejectCause,
    },
    /// The call was made and counted as a failure: an error, a result the
    /// classifier called a failure, or a success slower than the threshold.
    Failed {
        /// The error's message, or why the result counted as a failure.
        reason: String,
    },
    /// The call ran past the per-attempt timeout and was abandoned.
    TimedOut {
        /// The timeout.
        after: Duration,
    },
    /// Not asked: `max_retries` calls had already been made.
    NotTried,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected {
                cause: RejectCause::StoreUnavailable,
                ..
            } => f.write_str("rejected (breaker store unavailable, fail-closed)"),
            Self::Rejected {
                state, retry_after, ..
            } => match retry_after {
                Some(after) => write!(
                    f,
                    "rejected ({state}, retry after {:.3}s)",
                    after.as_secs_f64()
                ),
                None => write!(f, "rejected ({state})"),
            },
            // One line, whatever the error's message holds.
            Self::Failed { reason } => write!(f, "failed: {}", one_line(reason)),
            Self::TimedOut { after } => write!(f, "timed out after {after:?}"),
            Self::NotTried => f.write_str("not tried (max_retries reached)"),
        }
    }
}

/// One agent of a route and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentReport {
    /// The agent.
    pub agent: AgentId,
    /// What happened to it.
    pub attempt: Attempt,
}

impl fmt::Display for AgentReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.agent, self.attempt)
    }
}

/// No agent of the list served the task.
///
/// Carries, for every agent of the list in priority order, what happened to
/// it. Its `Display` is one line:
///
/// ```text
/// all 3 agents failed for task "task-7" (2 calls): agent-1 rejected (open, retry after 1.204s); agent-2 failed: connection refused; agent-3 timed out after 2s
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllAgentsFailed {
    /// The task that was routed.
    pub task_id: String,
    /// Every agent of the list, in the order given, with what happened to it.
    pub agents: Vec<AgentReport>,
    /// Calls made (rejections are not calls).
    pub calls: u32,
    /// Whether panic mode called an agent whose circuit had rejected.
    pub panic_mode: bool,
}

impl AllAgentsFailed {
    /// Whether every agent was rejected, so no call was made.
    #[must_use]
    pub fn all_rejected(&self) -> bool {
        self.agents
            .iter()
            .all(|r| matches!(r.attempt, Attempt::Rejected { .. }))
    }

    /// What happened to `agent`, if it was in the list.
    #[must_use]
    pub fn attempt(&self, agent: &str) -> Option<&Attempt> {
        self.agents
            .iter()
            .find(|r| r.agent.as_str() == agent)
            .map(|r| &r.attempt)
    }
}

impl fmt::Display for AllAgentsFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.agents.len();
        let agents = if n == 1 { "agent" } else { "agents" };
        let calls = if self.calls == 1 { "call" } else { "calls" };
        write!(
            f,
            "all {n} {agents} failed for task {:?} ({} {calls}{})",
            self.task_id,
            self.calls,
            if self.panic_mode { ", panic mode" } else { "" }
        )?;
        for (i, report) in self.agents.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            report.fmt(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for AllAgentsFailed {}

/// Why [`route_task`](super::FailoverRouter::route_task) did not return a
/// result. `E` is the task function's error type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError<E> {
    /// Every agent was rejected, failed, timed out or was left untried.
    #[error(transparent)]
    AllAgentsFailed(AllAgentsFailed),
    /// A call's error that the classifier did not count against the agent
    /// (judged [`Neutral`](crate::Outcome::Neutral) or
    /// [`Success`](crate::Outcome::Success): the caller's own mistake, say).
    /// It is returned as is rather than tried on the next agent, where it
    /// would most likely fail the same way.
    #[error("task {task_id:?} on {agent}: {error}")]
    Inner {
        /// The task.
        task_id: String,
        /// The agent that answered with the error.
        agent: AgentId,
        /// The error.
        error: E,
    },
    /// The agent list is empty. No call was made.
    #[error("task {task_id:?}: the agent list is empty; pass at least one agent id")]
    NoAgents {
        /// The task.
        task_id: String,
    },
    /// An agent appears twice in the list. No call was made.
    #[error(
        "task {task_id:?}: agent {agent} appears twice in the list (positions {first} and {second}); list each agent once, in priority order"
    )]
    DuplicateAgent {
        /// The task.
        task_id: String,
        /// The repeated agent.
        agent: AgentId,
        /// Its first position (from 0).
        first: usize,
        /// Its second position.
        second: usize,
    },
    /// An entry of the list is not a valid agent id. No call was made.
    #[error("task {task_id:?}: agent {input:?} at position {index} is invalid: {source}")]
    InvalidAgentId {
        /// The task.
        task_id: String,
        /// The entry as given.
        input: String,
        /// Its position (from 0).
        index: usize,
        /// What is wrong with it.
        source: AgentIdError,
    },
}

impl<E> RouteError<E> {
    /// Whether the agent list was at fault (empty, duplicate, invalid id):
    /// no call was made.
    #[must_use]
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Self::NoAgents { .. } | Self::DuplicateAgent { .. } | Self::InvalidAgentId { .. }
        )
    }

    /// The report of every agent, when all failed.
    #[must_use]
    pub fn all_agents_failed(&self) -> Option<&AllAgentsFailed> {
        match self {
            Self::AllAgentsFailed(e) => Some(e),
            _ => None,
        }
    }
}

/// An invalid [`FailoverRouterBuilder`](super::FailoverRouterBuilder)
/// setting: names the setting and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid router config: `{field}` is {value}, but {expected}")]
#[non_exhaustive]
pub struct RouterConfigError {
    /// The offending setting.
    pub field: &'static str,
    /// The value it had, rendered.
    pub value: String,
    /// What is allowed.
    pub expected: &'static str,
}

/// `s` with line breaks and tabs turned into spaces.
fn one_line(s: &str) -> String {
    s.split(['\n', '\r', '\t'])
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
