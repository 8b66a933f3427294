//! `config AGENT`: shows, sets or clears the settings stored for one agent
//! (see [`AgentSettings`]), which every pod reads with the agent's state.

use super::output::out_line;
use super::status::{admin, admin_error};
use super::{CliError, ConfigArgs, StoreArgs};
use crate::agent_id::AgentId;
use crate::breaker::BreakerError;
use crate::config::AgentSettings;

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
