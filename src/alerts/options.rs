//! Per-webhook options: a signing secret, a filter, a payload format.

use std::fmt;

use crate::{CircuitState, Transition};

/// How one webhook is called: see [`WebhooksBuilder::webhook`](super::WebhooksBuilder::webhook).
///
/// Debug shows the secret and a PagerDuty routing key as `set`.
#[derive(Clone, Default)]
#[must_use]
pub struct WebhookOptions {
    pub(super) secret: Option<String>,
    pub(super) format: WebhookFormat,
    pub(super) filter: WebhookFilter,
}

impl fmt::Debug for WebhookOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookOptions")
            .field("secret", &self.secret.as_ref().map(|_| "set"))
            .field("format", &self.format)
            .field("filter", &self.filter)
            .finish()
    }
}

impl WebhookOptions {
    /// The defaults: unsigned, every transition, as the transition JSON.
    pub fn new() -> Self {
        Self::default()
    }

    /// Signs every POST with HMAC-SHA256 under `secret` (at least 16
    /// bytes): see the module docs, "Signatures".
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// The body of each POST (default [`WebhookFormat::Json`]).
    pub fn format(mut self, format: WebhookFormat) -> Self {
        self.format = format;
        self
    }

    /// Which transitions are POSTed (default: all).
    pub fn filter(mut self, filter: WebhookFilter) -> Self {
        self.filter = filter;
        self
    }

    pub(super) fn check(&self) -> Result<(), String> {
        if let Some(secret) = &self.secret
            && secret.len() < MIN_SECRET_LEN
        {
            return Err(format!(
                "the signing secret has {} bytes; give at least {MIN_SECRET_LEN} (e.g. `openssl rand -hex 32`)",
                secret.len()
            ));
        }
        if let WebhookFormat::PagerDuty { routing_key } = &self.format
            && routing_key.trim().is_empty()
        {
            return Err("the PagerDuty routing key is empty; give the integration key of an Events API v2 service".into());
        }
        self.filter.check()
    }
}

/// The shortest signing secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// The body of each POST.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookFormat {
    /// The transition JSON, as the `PREFIX:transitions` stream holds it.
    #[default]
    Json,
    /// A Slack incoming webhook message: `{"text": "..."}`.
    Slack,
    /// A PagerDuty Events API v2 event: `trigger` when a circuit opens
    /// (`open`, `forced_open`), `resolve` when it closes (`closed`,
    /// `forced_closed`), with one dedup key per agent,
    /// `fleet-breaker/PREFIX/AGENT`. Other transitions (to `half_open`)
    /// are not sent, and counted as filtered.
    PagerDuty {
        /// The integration key of the PagerDuty service.
        routing_key: String,
    },
}

impl fmt::Debug for WebhookFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json => f.write_str("Json"),
            Self::Slack => f.write_str("Slack"),
            Self::PagerDuty { .. } => f.write_str("PagerDuty { routing_key: set }"),
        }
    }
}

/// Which transitions a webhook gets. Empty lists let everything through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct WebhookFilter {
    to: Vec<CircuitState>,
    from: Vec<CircuitState>,
    agents: Vec<String>,
}

impl WebhookFilter {
    /// Lets every transition through.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only transitions into one of `states`.
    pub fn to(mut self, states: impl IntoIterator<Item = CircuitState>) -> Self {
        self.to.extend(states);
        self
    }

    /// Only transitions out of one of `states`.
    pub fn from(mut self, states: impl IntoIterator<Item = CircuitState>) -> Self {
        self.from.extend(states);
        self
    }

    /// Only agents matching one of `patterns`: an agent id, where `*`
    /// stands for any run of characters (`agent-*`, `*-gpu`, `*`).
    pub fn agents<S: Into<String>>(mut self, patterns: impl IntoIterator<Item = S>) -> Self {
        self.agents.extend(patterns.into_iter().map(Into::into));
        self
    }

    /// Whether `transition` passes.
    #[must_use]
    pub fn allows(&self, transition: &Transition) -> bool {
        (self.to.is_empty() || self.to.contains(&transition.to))
            && (self.from.is_empty() || self.from.contains(&transition.from))
            && (self.agents.is_empty()
                || self
                    .agents
                    .iter()
                    .any(|p| wildcard_match(p, transition.agent_id.as_str())))
    }

    fn check(&self) -> Result<(), String> {
        match self.agents.iter().find(|p| p.trim().is_empty()) {
            Some(_) => Err("an agent pattern of the filter is empty; give an agent id or a pattern such as agent-*".into()),
            None => Ok(()),
        }
    }
}

/// `*` matches any run of characters, everything else itself. Hand-written
/// rather than `globset`: agent ids hold no path separators or classes,
/// and this is the whole of it.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_runs_of_characters() {
        for (p, t, ok) in [
            ("agent-*", "agent-1", true),
            ("agent-*", "agent-", true),
            ("agent-*", "gpu-1", false),
            ("*", "x", true),
            ("*-gpu", "a-gpu", true),
            ("*-gpu", "a-gpu-2", false),
            ("a*b*c", "a-b-c", true),
            ("a*b*c", "a-c-b", false),
            ("ab*ba", "aba", false),
            ("agent-1", "agent-1", true),
            ("agent-1", "agent-10", false),
        ] {
            assert_eq!(wildcard_match(p, t), ok, "{p} ~ {t}");
        }
    }

    #[test]
    fn secrets_and_routing_keys_never_show() {
        let options = WebhookOptions::new()
            .secret("0123456789abcdef-hunter2")
            .format(WebhookFormat::PagerDuty {
                routing_key: "R0UT1NG".into(),
            });
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("R0UT1NG"),
            "{shown}"
        );
        assert!(WebhookOptions::new().secret("short").check().is_err());
    }
}
