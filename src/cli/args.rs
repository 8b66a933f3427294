//! The command line's shape: [`Cli`], its subcommands and their flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::BreakerConfig;

pub use super::configure::ConfigArgs;

/// The default prefix of the fleet's Redis keys.
const DEFAULT_PREFIX: &str = crate::store::DEFAULT_PREFIX;

/// A circuit breaker and failover router shared by a fleet through Redis.
#[derive(Debug, Parser)]
#[command(name = "fleet-breaker", version, about, long_about = None)]
#[command(propagate_version = true)]
pub struct Cli {
    /// Where the fleet's state lives.
    #[command(flatten)]
    pub store: StoreArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The store options shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The fleet's Redis, e.g. redis://127.0.0.1:6379 or rediss://user:pass@host:6380.
    /// Without it, `demo` runs on the embedded store; the other commands need it.
    #[arg(
        long,
        env = "REDIS_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    pub redis_url: Option<SecretUrl>,
    /// A Redis Cluster instead: the URLs of some of its nodes, comma-separated
    /// (or a `redis+cluster://h1:p1,h2:p2` URL in --redis-url).
    #[arg(
        long,
        env = "REDIS_CLUSTER_URLS",
        global = true,
        value_name = "URL,URL",
        hide_env_values = true
    )]
    pub redis_cluster: Option<SecretUrl>,
    /// A master followed through Sentinel instead: the sentinels' URLs,
    /// comma-separated (with --sentinel-master).
    #[arg(
        long,
        env = "REDIS_SENTINEL_URLS",
        global = true,
        value_name = "URL,URL",
        hide_env_values = true
    )]
    pub redis_sentinel: Option<SecretUrl>,
    /// The name the sentinels monitor the master under.
    #[arg(
        long,
        hide_env_values = true,
        env = "REDIS_SENTINEL_MASTER",
        global = true,
        value_name = "NAME"
    )]
    pub sentinel_master: Option<String>,
    /// The prefix of the fleet's Redis keys; every pod of a fleet must use the same.
    #[arg(long, hide_env_values = true, env = "FLEET_BREAKER_PREFIX", default_value = DEFAULT_PREFIX, global = true)]
    pub prefix: String,
    /// How long one Redis call may take before it counts as failed.
    #[arg(long, hide_env_values = true, env = "FLEET_BREAKER_REDIS_TIMEOUT", default_value = "100ms", value_parser = parse_duration, global = true, value_name = "DURATION")]
    pub redis_timeout: Duration,
    /// A PEM file of CA certificates to verify a rediss:// server with (feature `tls`).
    #[arg(
        long,
        hide_env_values = true,
        env = "FLEET_BREAKER_REDIS_CA",
        global = true,
        value_name = "PATH"
    )]
    pub redis_ca: Option<PathBuf>,
    /// The breaker's settings as a JSON file; the help text states the
    /// defaults, rendered from [`BreakerConfig::default`] by `config_help`.
    #[arg(long, hide_env_values = true, env = "FLEET_BREAKER_CONFIG", global = true, value_name = "PATH", help = config_help())]
    pub config: Option<PathBuf>,
}

/// A secret from the command line (the admin token): `Debug` shows `set`,
/// so a parsed command line can be logged whole.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(set)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(Self(raw.to_owned()))
    }
}

/// A URL from the command line (Redis, a webhook): `Debug` shows its
/// password as `set`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL itself, password included.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretUrl({:?})", crate::store::redact_url(&self.0))
    }
}

impl std::str::FromStr for SecretUrl {
    type Err = std::convert::Infallible;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(Self(raw.to_owned()))
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API, dashboard, SSE and /metrics of a fleet (reads the shared state in Redis).
    Serve(ServeArgs),
    /// Run simulated router pods and flaky agents, with the dashboard: the quickest look at fleet-breaker.
    Demo(DemoArgs),
    /// Print every agent's state and counters (or one agent's).
    Status(StatusArgs),
    /// Print transitions as they happen, one line each.
    Watch(WatchArgs),
    /// Close an agent's circuit and zero its counters, fleet-wide.
    Reset(ResetArgs),
    /// Force an agent's circuit open or closed, or back to automatic, fleet-wide.
    Force(ForceArgs),
    /// Show, set or clear the settings stored for one agent, which override every pod's config for it.
    Config(ConfigArgs),
}

/// `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0 picks a free one).
    #[arg(
        long,
        hide_env_values = true,
        env = "FLEET_BREAKER_BIND",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub bind: String,
    /// The bearer token of the admin routes (reset, force); at least 16 characters.
    /// Without it the admin routes answer 403.
    #[arg(
        long,
        env = "FLEET_BREAKER_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<Secret>,
    /// POST every transition to this URL, once fleet-wide (repeatable; env: comma-separated).
    /// Options follow the URL in the same value, separated by spaces: `secret=S` or
    /// `secret-env=VAR` (sign with HMAC-SHA256), `format=json|slack|pagerduty` (pagerduty
    /// needs `routing-key=K` or `routing-key-env=VAR`), and filters `to=STATE|STATE...`,
    /// `from=STATE|...`, `agents=PATTERN|...` (`*` matches any run of characters), e.g.
    /// `--webhook 'https://hooks.slack.com/services/T/B/X format=slack to=open|closed'`.
    /// A comma always starts a new webhook: give a secret holding commas or spaces with secret-env.
    #[arg(
        long = "webhook",
        env = "FLEET_BREAKER_WEBHOOKS",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "URL [OPTION=VALUE]..."
    )]
    pub webhooks: Vec<super::WebhookArg>,
    /// How long one read of the fleet's health serves every request
    /// (`/api/circuit-breaker/health`, `/metrics`); a transition drops it at
    /// once. 0 reads the store on every request.
    #[arg(long, hide_env_values = true, env = "FLEET_BREAKER_HEALTH_MAX_AGE", default_value = "500ms", value_parser = parse_duration_or_zero, value_name = "DURATION")]
    pub health_max_age: Duration,
    /// Which agents get per-agent series in /metrics: not-closed (open, half-open,
    /// forced open or corrupt), all, or a number N (at most N, not closed first).
    /// The fleet's totals always count every agent.
    #[arg(
        long,
        hide_env_values = true,
        env = "FLEET_BREAKER_METRICS_AGENTS",
        default_value = "not-closed",
        value_name = "not-closed|all|N"
    )]
    pub metrics_agents: crate::http::MetricsAgents,
    /// Tries per webhook delivery before it is dead-lettered.
    #[arg(long, hide_env_values = true, env = "FLEET_BREAKER_WEBHOOK_MAX_TRIES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub webhook_max_tries: u32,
    /// Connection limits and timeouts of the listener.
    #[command(flatten)]
    pub listen: super::ListenArgs,
}

/// `demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// The address of the dashboard (port 0 picks a free one). Without it,
    /// FLEET_BREAKER_DEMO_ADDR or 127.0.0.1:8080, or the next free port
    /// when that one is taken.
    #[arg(
        long,
        hide_env_values = true,
        env = "FLEET_BREAKER_BIND",
        value_name = "ADDR"
    )]
    pub bind: Option<String>,
    /// Stop after this long (e.g. 30s, 5m); runs until Ctrl-C without it.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// Simulated router pods.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub pods: u32,
    /// Tasks each pod routes per second.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rate: u32,
    /// The seconds of one outage cycle of agent-1 (it is down for the first half).
    #[arg(long, default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    pub cycle: Duration,
    /// The admin token of the dashboard's buttons (a random one is made and printed without it).
    #[arg(
        long,
        env = "FLEET_BREAKER_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<Secret>,
    /// Run the pods only, without the dashboard.
    #[arg(long)]
    pub no_serve: bool,
    /// Connection limits and timeouts of the dashboard's listener.
    #[command(flatten)]
    pub listen: super::ListenArgs,
    /// The name of this demo process's pods, to tell several demo processes apart.
    #[arg(
        long,
        hide_env_values = true,
        env = "FLEET_BREAKER_INSTANCE",
        default_value = "demo",
        value_name = "NAME"
    )]
    pub instance: String,
}

/// `status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Only this agent.
    pub agent: Option<String>,
    /// JSON (the health document, or one agent's metrics) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `watch`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Stop after this long (e.g. 1m); runs until Ctrl-C without it.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,
}

/// `reset`.
#[derive(Debug, Clone, Args)]
pub struct ResetArgs {
    /// The agent to reset.
    pub agent: String,
}

/// `force`.
#[derive(Debug, Clone, Args)]
pub struct ForceArgs {
    /// The agent to force.
    pub agent: String,
    /// open: reject every call; closed: admit every call; auto: end a force.
    pub state: ForceState,
    /// End the force by itself after this long (e.g. 10m); until changed without it.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub ttl: Option<Duration>,
}

/// The states `force` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForceState {
    /// Reject every call.
    Open,
    /// Admit every call; never open.
    Closed,
    /// End any force.
    Auto,
}

impl From<ForceState> for crate::model::ForceMode {
    fn from(state: ForceState) -> Self {
        match state {
            ForceState::Open => Self::Open,
            ForceState::Closed => Self::Closed,
            ForceState::Auto => Self::Auto,
        }
    }
}

/// The help of `--config`, with the defaults of [`BreakerConfig`] (so that
/// it cannot drift from them).
fn config_help() -> String {
    format!(
        "The breaker's settings as a JSON file (the fields of `BreakerConfig`: \
         failure_threshold, half_open_max_calls, base_backoff_ms, \
         backoff_multiplier, max_backoff_ms, recovery_timeout_ms, \
         failure_rate_threshold, slow_call_duration_ms, slow_call_rate_threshold, \
         window_ms, minimum_calls, min_reporting_pods, backoff_jitter); every pod of \
         a fleet must use the same (`config AGENT` overrides them for one agent). \
         Defaults: {}",
        BreakerConfig::default()
    )
}

pub(super) fn parse_duration(raw: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw.trim())
        .map_err(|e| format!("{e} (write e.g. 500ms, 30s, 10m, 1h)"))?;
    if d.is_zero() {
        return Err("must be more than zero".to_owned());
    }
    Ok(d)
}

fn parse_duration_or_zero(raw: &str) -> Result<Duration, String> {
    if raw.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(raw.trim()).map_err(|e| format!("{e} (write e.g. 0, 250ms, 2s)"))
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
