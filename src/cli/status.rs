//! `status`, `reset` and `force`: one look at, or one change to, the fleet.

use super::output::{out, out_line, status_table};
use super::{CliError, Connection, ForceArgs, ResetArgs, StatusArgs, StoreArgs};
use crate::agent_id::AgentId;
use crate::breaker::{AgentMetrics, BreakerError, CircuitBreaker};
use crate::router::FailoverRouter;
use crate::store::StoreError;

/// Prints every agent's state and counters, or one agent's.
pub(super) async fn status(store: &StoreArgs, args: StatusArgs) -> Result<(), CliError> {
    let connection = Connection::redis(store).await?;
    let breaker = connection.breaker(&super::serve::instance_name("status"), None, false, false)?;
    if let Some(raw) = args.agent.as_deref() {
        let agent = agent_id(raw)?;
        let metrics = match breaker.metrics(&agent).await {
            Err(BreakerError::Store(StoreError::Corrupt { corruption, .. })) => {
                AgentMetrics::from_corruption(&agent, corruption)
            }
            read => read.map_err(|e| admin_error(&connection, &agent, e))?,
        };
        if args.json {
            out_line(&serde_json::to_string_pretty(&metrics)?)?;
        } else {
            out(&status_table([&metrics]))?;
            print_corrupt([&metrics])?;
        }
        return Ok(());
    }
    let health = FailoverRouter::new(breaker)
        .health_status()
        .await
        .map_err(|e| connection.error(e))?;
    if args.json {
        out_line(&serde_json::to_string_pretty(&health)?)?;
    } else if health.agents.is_empty() {
        out_line(&format!(
            "no agents yet: no pod has made a call through this store ({})",
            connection.description
        ))?;
    } else {
        out(&status_table(health.agents.values()))?;
        let corrupt = if health.corrupt_agents > 0 {
            format!(", {} corrupt", health.corrupt_agents)
        } else {
            String::new()
        };
        out_line(&format!(
            "\n{} agents: {} healthy, {} half-open, {} open{corrupt}; {} routing decisions",
            health.total_agents,
            health.healthy_agents,
            health.half_open_circuits,
            health.open_circuits,
            health.routing_events
        ))?;
        print_corrupt(health.agents.values())?;
    }
    Ok(())
}

/// One line per corrupt agent: the field, its value, and the repair.
fn print_corrupt<'a>(agents: impl IntoIterator<Item = &'a AgentMetrics>) -> Result<(), CliError> {
    for m in agents {
        if let Some(corruption) = &m.corrupt {
            out_line(&format!(
                "corrupt {}: {corruption}; `fleet-breaker reset {}` rewrites it",
                m.agent_id, m.agent_id
            ))?;
        }
    }
    Ok(())
}

/// Resets one agent fleet-wide and prints the transition.
pub(super) async fn reset(store: &StoreArgs, args: ResetArgs) -> Result<(), CliError> {
    let (connection, breaker, agent) = admin(store, &args.agent).await?;
    let transition = breaker
        .reset(&agent)
        .await
        .map_err(|e| admin_error(&connection, &agent, e))?;
    out_line(&format!(
        "reset {agent}: {} -> {}",
        transition.from, transition.to
    ))
}

/// Forces one agent fleet-wide and prints the transition.
pub(super) async fn force(store: &StoreArgs, args: ForceArgs) -> Result<(), CliError> {
    let (connection, breaker, agent) = admin(store, &args.agent).await?;
    let transition = breaker
        .force(&agent, args.state.into(), args.ttl)
        .await
        .map_err(|e| admin_error(&connection, &agent, e))?;
    let until = args.ttl.map_or_else(
        || " until changed".to_owned(),
        |ttl| format!(" for {}", humantime::format_duration(ttl)),
    );
    let until = if matches!(args.state, super::ForceState::Auto) {
        String::new()
    } else {
        until
    };
    out_line(&format!(
        "forced {agent}: {} -> {}{until}",
        transition.from, transition.to
    ))
}

pub(super) async fn admin(
    store: &StoreArgs,
    raw: &str,
) -> Result<(Connection, CircuitBreaker, AgentId), CliError> {
    let agent = agent_id(raw)?;
    let connection = Connection::redis(store).await?;
    let breaker = connection.breaker(&super::serve::instance_name("admin"), None, false, false)?;
    Ok((connection, breaker, agent))
}

fn agent_id(raw: &str) -> Result<AgentId, CliError> {
    AgentId::new(raw).map_err(|e| CliError::new(e.to_string()))
}

pub(super) fn admin_error(
    connection: &Connection,
    agent: &AgentId,
    error: BreakerError,
) -> CliError {
    match error {
        BreakerError::UnknownAgent(_) => CliError::new(format!(
            "unknown agent {agent}: no pod has called it through this store (see `fleet-breaker status`)"
        )),
        other => connection.error(other),
    }
}
