//! Agent lists: what `route_task` accepts, checked before any call.

use std::collections::HashMap;

use super::error::RouteError;
use crate::agent_id::{AgentId, AgentIdError};

/// An entry of an agent list: a string to check, or an [`AgentId`] already
/// checked (cloned, not checked again).
pub trait AgentInput {
    /// The entry as an agent id.
    ///
    /// # Errors
    ///
    /// [`AgentIdError`] when the entry is not a valid agent id.
    fn to_agent_id(&self) -> Result<AgentId, AgentIdError>;

    /// The entry as given, for error messages.
    fn as_input(&self) -> &str;
}

impl AgentInput for AgentId {
    fn to_agent_id(&self) -> Result<AgentId, AgentIdError> {
        Ok(self.clone())
    }

    fn as_input(&self) -> &str {
        self.as_str()
    }
}

impl AgentInput for str {
    fn to_agent_id(&self) -> Result<AgentId, AgentIdError> {
        AgentId::new(self)
    }

    fn as_input(&self) -> &str {
        self
    }
}

impl AgentInput for String {
    fn to_agent_id(&self) -> Result<AgentId, AgentIdError> {
        AgentId::new(self)
    }

    fn as_input(&self) -> &str {
        self
    }
}

impl<T: AgentInput + ?Sized> AgentInput for &T {
    fn to_agent_id(&self) -> Result<AgentId, AgentIdError> {
        (**self).to_agent_id()
    }

    fn as_input(&self) -> &str {
        (**self).as_input()
    }
}

/// Validates every entry before any call: ids, duplicates, emptiness.
pub(super) fn validate<A: AgentInput, E>(
    task_id: &str,
    agents: impl IntoIterator<Item = A>,
) -> Result<Vec<AgentId>, RouteError<E>> {
    let agents = agents.into_iter();
    let mut ids: Vec<AgentId> = Vec::with_capacity(agents.size_hint().0);
    for (index, input) in agents.enumerate() {
        let id = input
            .to_agent_id()
            .map_err(|source| RouteError::InvalidAgentId {
                task_id: task_id.to_owned(),
                input: input.as_input().to_owned(),
                index,
                source,
            })?;
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(RouteError::NoAgents {
            task_id: task_id.to_owned(),
        });
    }
    // Lists are short: a quadratic scan beats hashing up to a few dozen.
    let duplicate = if ids.len() <= 16 {
        (1..ids.len()).find_map(|j| ids[..j].iter().position(|a| *a == ids[j]).map(|i| (i, j)))
    } else {
        let mut seen = HashMap::with_capacity(ids.len());
        ids.iter()
            .enumerate()
            .find_map(|(j, id)| seen.insert(id, j).map(|i| (i, j)))
    };
    if let Some((first, second)) = duplicate {
        return Err(RouteError::DuplicateAgent {
            task_id: task_id.to_owned(),
            agent: ids[first].clone(),
            first,
            second,
        });
    }
    Ok(ids)
}
