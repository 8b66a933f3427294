//! [`StoreExt`]: each [`Op`] as a typed call on any [`BreakerStore`].

use std::time::Duration;

use super::{Applied, BreakerStore, Op, StoreError};
use crate::agent_id::AgentId;
use crate::config::{AgentSettings, BreakerConfig};
use crate::model::{Batch, Decision, ForceMode, Outcome, Report, Ticket};

/// The operations of [`BreakerStore::apply`] as typed calls, for every store
/// (a blanket implementation: nothing to implement).
pub trait StoreExt: BreakerStore {
    /// Asks for a permit; see [`crate::model::acquire`]. Creates the agent.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    fn acquire(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        permit_id: &str,
    ) -> impl Future<Output = Result<Applied<Decision>, StoreError>> + Send {
        async move {
            let applied = self.apply(config, agent, Op::Acquire { permit_id }).await?;
            let applied = applied.ok_or_else(|| answered_nothing(agent, "acquire"))?;
            match applied.value {
                Some(decision) => Ok(Applied {
                    value: decision,
                    snapshot: applied.snapshot,
                    transition: applied.transition,
                    now_ms: applied.now_ms,
                }),
                None => Err(answered_nothing(agent, "acquire")),
            }
        }
    }

    /// Records an outcome; see [`crate::model::record`]. Creates the agent.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    fn record(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        ticket: &Ticket,
        outcome: Outcome,
    ) -> impl Future<Output = Result<Applied<()>, StoreError>> + Send {
        self.report(config, agent, ticket, Report::of(outcome))
    }

    /// Records an outcome with what else the pod knows of the call (slow,
    /// a retry-after, the pod); see [`crate::model::record`]. Creates the agent.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    fn report(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        ticket: &Ticket,
        report: Report<'_>,
    ) -> impl Future<Output = Result<Applied<()>, StoreError>> + Send {
        async move {
            let applied = self
                .apply(config, agent, Op::Record { ticket, report })
                .await?;
            applied
                .map(unit)
                .ok_or_else(|| answered_nothing(agent, "record"))
        }
    }

    /// Replaces the settings stored for the agent (empty settings: the
    /// process's config again); see [`crate::model::configure`]. Creates the
    /// agent.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    fn configure(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        settings: &AgentSettings,
    ) -> impl Future<Output = Result<Applied<()>, StoreError>> + Send {
        async move {
            let applied = self.apply(config, agent, Op::Configure(settings)).await?;
            applied
                .map(unit)
                .ok_or_else(|| answered_nothing(agent, "configure"))
        }
    }

    /// Applies outcomes counted locally; `Ok(None)` for an unknown agent.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    fn flush(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        batch: &Batch,
    ) -> impl Future<Output = Result<Option<Applied<()>>, StoreError>> + Send {
        async move { Ok(self.apply(config, agent, Op::Flush(batch)).await?.map(unit)) }
    }

    /// The admin reset; `Ok(None)` for an unknown agent.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    fn reset(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
    ) -> impl Future<Output = Result<Option<Applied<()>>, StoreError>> + Send {
        async move { Ok(self.apply(config, agent, Op::Reset).await?.map(unit)) }
    }

    /// The operator override; `Ok(None)` for an unknown agent.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    fn force(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        mode: ForceMode,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<Option<Applied<()>>, StoreError>> + Send {
        async move {
            let op = Op::Force { mode, ttl };
            Ok(self.apply(config, agent, op).await?.map(unit))
        }
    }

    /// The agent's state (after lazy lease and force expiry); `Ok(None)`
    /// for an unknown agent.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be reached or holds bad data.
    fn snapshot(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
    ) -> impl Future<Output = Result<Option<Applied<()>>, StoreError>> + Send {
        async move { Ok(self.apply(config, agent, Op::Snapshot).await?.map(unit)) }
    }
}

impl<S: BreakerStore + ?Sized> StoreExt for S {}

fn unit(applied: Applied<Option<Decision>>) -> Applied<()> {
    Applied {
        value: (),
        snapshot: applied.snapshot,
        transition: applied.transition,
        now_ms: applied.now_ms,
    }
}

/// An operation that always has an answer got none: a store bug.
fn answered_nothing(agent: &AgentId, op: &str) -> StoreError {
    StoreError::InvalidData {
        what: format!("store reply for agent {agent}"),
        detail: format!("the {op} operation answered nothing"),
    }
}
