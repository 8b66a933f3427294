//! `config AGENT`: shows, sets or clears the settings stored for one agent
//! (see [`AgentSettings`]), which every pod reads with the agent's state:
//! its flags ([`ConfigArgs`]) and what it does.

use clap::Args;

use super::output::out_line;
use super::status::{admin, admin_error};
use super::{CliError, StoreArgs};
use crate::agent_id::AgentId;
use crate::breaker::BreakerError;
use crate::config::AgentSettings;

/// `config`: each flag sets one of the agent's settings (the others stored
/// stay); `--clear` removes them all; no flag shows them.
#[derive(Debug, Clone, Args)]
#[command(group = clap::ArgGroup::new("fields").multiple(true))]
pub struct ConfigArgs {
    /// The agent to configure.
    pub agent: String,
    /// Consecutive failures that open the circuit (failure_threshold; at least 1).
    #[arg(long, value_name = "N", group = "fields")]
    pub failure_threshold: Option<u32>,
    /// Failed share of the window's calls that opens it (failure_rate_threshold; above 0, at most 1; 0: off).
    #[arg(long, value_name = "RATE", group = "fields")]
    pub failure_rate: Option<f64>,
    /// Calls at least this slow, in ms, are slow (slow_call_duration_ms; 0: no call is slow).
    #[arg(long, value_name = "MS", group = "fields")]
    pub slow_call_duration_ms: Option<u64>,
    /// Slow share of the window's calls that opens it (slow_call_rate_threshold; above 0, at most 1; 0: off).
    #[arg(long, value_name = "RATE", group = "fields")]
    pub slow_call_rate: Option<f64>,
    /// The window the rates are measured over, in ms (window_ms; 1,000 to 3,600,000, multiples of 10).
    #[arg(long, value_name = "MS", group = "fields")]
    pub window_ms: Option<u64>,
    /// No rate trips under this many calls in the window (minimum_calls; at least 1).
    #[arg(long, value_name = "N", group = "fields")]
    pub minimum_calls: Option<u32>,
    /// Distinct pods whose failures a trip needs (min_reporting_pods; 1 to 64).
    #[arg(long, value_name = "N", group = "fields")]
    pub min_reporting_pods: Option<u32>,
    /// Spread of each open time (backoff_jitter; 0 to 0.5).
    #[arg(long, value_name = "J", group = "fields")]
    pub backoff_jitter: Option<f64>,
    /// Probe permits in half-open, fleet-wide (half_open_max_calls; at least 1).
    #[arg(long, value_name = "N", group = "fields")]
    pub half_open_max_calls: Option<u32>,
    /// Backoff of a closed circuit, in ms (base_backoff_ms; at least 1).
    #[arg(long, value_name = "MS", group = "fields")]
    pub base_backoff_ms: Option<u64>,
    /// Cap on the backoff, in ms (max_backoff_ms; at least the base backoff).
    #[arg(long, value_name = "MS", group = "fields")]
    pub max_backoff_ms: Option<u64>,
    /// Lease of a probe permit, in ms (recovery_timeout_ms; at least 1).
    #[arg(long, value_name = "MS", group = "fields")]
    pub recovery_timeout_ms: Option<u64>,
    /// Every opening multiplies the backoff by this (backoff_multiplier; 1 to 1000).
    #[arg(long, value_name = "M", group = "fields")]
    pub backoff_multiplier: Option<f64>,
    /// Remove every setting stored for the agent: it follows each pod's config again.
    #[arg(long, conflicts_with = "fields")]
    pub clear: bool,
    /// Print the settings as JSON.
    #[arg(long)]
    pub json: bool,
}

impl ConfigArgs {
    /// The settings the flags set (empty with none).
    #[must_use]
    pub fn settings(&self) -> crate::config::AgentSettings {
        crate::config::AgentSettings {
            failure_threshold: self.failure_threshold,
            half_open_max_calls: self.half_open_max_calls,
            base_backoff_ms: self.base_backoff_ms,
            backoff_multiplier: self.backoff_multiplier,
            max_backoff_ms: self.max_backoff_ms,
            recovery_timeout_ms: self.recovery_timeout_ms,
            failure_rate_threshold: self.failure_rate,
            slow_call_duration_ms: self.slow_call_duration_ms,
            slow_call_rate_threshold: self.slow_call_rate,
            window_ms: self.window_ms,
            minimum_calls: self.minimum_calls,
            min_reporting_pods: self.min_reporting_pods,
            backoff_jitter: self.backoff_jitter,
        }
    }
}

/// Each setting and the flag that sets it, for error messages.
const FLAGS: [(&str, &str); 13] = [
    ("failure_threshold", "--failure-threshold"),
    ("half_open_max_calls", "--half-open-max-calls"),
    ("base_backoff_ms", "--base-backoff-ms"),
    ("backoff_multiplier", "--backoff-multiplier"),
    ("max_backoff_ms", "--max-backoff-ms"),
    ("recovery_timeout_ms", "--recovery-timeout-ms"),
    ("failure_rate_threshold", "--failure-rate"),
    ("slow_call_duration_ms", "--slow-call-duration-ms"),
    ("slow_call_rate_threshold", "--slow-call-rate"),
    ("window_ms", "--window-ms"),
    ("minimum_calls", "--minimum-calls"),
    ("min_reporting_pods", "--min-reporting-pods"),
    ("backoff_jitter", "--backoff-jitter"),
];

/// Shows the agent's settings (no flag), sets the flags' ones keeping the
/// others stored, or clears them all (`--clear`).
pub(super) async fn run(store: &StoreArgs, args: ConfigArgs) -> Result<(), CliError> {
    let (connection, breaker, agent) = admin(store, &args.agent).await?;
    let stored = match breaker.settings(&agent).await {
        Ok(settings) => Some(settings),
        Err(BreakerError::UnknownAgent(_)) => None,
        Err(error) => return Err(admin_error(&connection, &agent, error)),
    };
    let given = args.settings();
    if given.is_empty() && !args.clear {
        let Some(stored) = stored else {
            return Err(admin_error(
                &connection,
                &agent,
                BreakerError::UnknownAgent(agent.clone()),
            ));
        };
        return show(&agent, &stored, args.json, "");
    }
    if args.clear && stored.is_none_or(|s| s.is_empty()) {
        // Nothing to remove, and an agent no pod has called stays unwritten.
        return show(&agent, &AgentSettings::default(), args.json, "");
    }
    let mut next = if args.clear {
        AgentSettings::default()
    } else {
        stored.unwrap_or_default()
    };
    next.merge(&given);
    let snapshot = breaker
        .configure(&agent, next)
        .await
        .map_err(|error| match error {
            BreakerError::InvalidInput(message) => CliError::new(with_flag(message)),
            other => admin_error(&connection, &agent, other),
        })?;
    let verb = if args.clear {
        "cleared "
    } else {
        "configured "
    };
    show(&agent, &snapshot.settings, args.json, verb)
}

/// `agent-1: failure_threshold=3 failure_rate_threshold=0.5`, or that it
/// has none; or the JSON `{"agent_id": .., "settings": {..}}`.
fn show(agent: &AgentId, settings: &AgentSettings, json: bool, verb: &str) -> Result<(), CliError> {
    if json {
        let value = serde_json::json!({ "agent_id": agent, "settings": settings });
        return out_line(&serde_json::to_string_pretty(&value)?);
    }
    if settings.is_empty() {
        return out_line(&format!(
            "{verb}{agent}: no settings stored; it follows each pod's config"
        ));
    }
    out_line(&format!("{verb}{agent}: {}", settings_line(settings)))
}

/// `failure_threshold=3 failure_rate_threshold=0.5`, in the settings' order.
pub(super) fn settings_line(settings: &AgentSettings) -> String {
    settings
        .fields()
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The breaker's message naming a setting, with the flag that sets it.
fn with_flag(message: String) -> String {
    match FLAGS
        .iter()
        .find(|(name, _)| message.contains(&format!("`{name}`")))
    {
        Some((_, flag)) => format!("{message}; set with {flag}"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SETTING_NAMES;

    #[test]
    fn every_setting_has_a_flag() {
        let named: Vec<&str> = FLAGS.iter().map(|(name, _)| *name).collect();
        assert_eq!(named, SETTING_NAMES);
    }
}
