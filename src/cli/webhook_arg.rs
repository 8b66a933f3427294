//! `--webhook 'URL [OPTION=VALUE]...'`: one webhook and its options, in one
//! value (so the environment variable can carry it too).

use std::fmt;

use crate::CircuitState;
use crate::alerts::{WebhookFilter, WebhookFormat, WebhookOptions};
use crate::store::redact_url;

/// The syntax, for the help text and errors.
pub(crate) const WEBHOOK_SYNTAX: &str = "URL [secret=S | secret-env=VAR] [format=json|slack|pagerduty] \
     [routing-key=K | routing-key-env=VAR] [to=STATE|STATE...] [from=STATE|...] [agents=PATTERN|...]";

/// One `--webhook` value: a URL, then options separated by spaces. Parsed
/// when `serve` starts (`WebhookArg::parse`), not by clap, so that no
/// error message shows a secret.
///
/// `Debug` shows the URL with its password as `set`, and every option
/// without the secret and routing key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookArg(String);

impl std::str::FromStr for WebhookArg {
    type Err = std::convert::Infallible;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(Self(raw.to_owned()))
    }
}

impl fmt::Debug for WebhookArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookArg({:?})", self.shown())
    }
}

/// A parsed [`WebhookArg`].
#[derive(Debug)]
pub(crate) struct Webhook {
    pub(crate) url: String,
    pub(crate) options: WebhookOptions,
}

impl WebhookArg {
    /// The URL (password as `set`) and the options, secrets as `set`: for
    /// `Debug` and the startup lines.
    #[must_use]
    pub fn shown(&self) -> String {
        let mut words = self.0.split_whitespace();
        let mut shown = redact_url(words.next().unwrap_or_default());
        for word in words {
            shown.push(' ');
            match word.split_once('=') {
                Some((key @ ("secret" | "routing-key"), _)) => {
                    shown.push_str(key);
                    shown.push_str("=set");
                }
                Some(_) => shown.push_str(word),
                None => shown.push_str("(?)"),
            }
        }
        shown
    }

    /// Parses the value; `env` reads the variables `secret-env=` and
    /// `routing-key-env=` name.
    ///
    /// # Errors
    ///
    /// What is wrong, naming the option and never its secret value.
    pub(crate) fn parse(&self, env: impl Fn(&str) -> Option<String>) -> Result<Webhook, String> {
        let mut words = self.0.split_whitespace();
        let url = words
            .next()
            .ok_or("a --webhook value is empty; give a URL")?
            .to_owned();
        let at = redact_url(&url);
        let mut seen: Vec<&str> = Vec::new();
        let mut secret = None;
        let mut format = None;
        let mut routing_key = None;
        let mut filter = WebhookFilter::new();
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                return Err(format!(
                    "--webhook {at}: an option is not KEY=VALUE; options are separated by \
                     spaces: {WEBHOOK_SYNTAX}"
                ));
            };
            let name = key.trim_end_matches("-env");
            if seen.contains(&name) {
                return Err(format!("--webhook {at}: {name} is given twice"));
            }
            seen.push(name);
            if value.is_empty() {
                return Err(format!("--webhook {at}: {key}= has no value"));
            }
            let from_env = |var: &str| {
                env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                    format!(
                        "--webhook {at}: {key}={var}, but the environment variable {var} is not set"
                    )
                })
            };
            match key {
                "secret" => secret = Some(value.to_owned()),
                "secret-env" => secret = Some(from_env(value)?),
                "routing-key" => routing_key = Some(value.to_owned()),
                "routing-key-env" => routing_key = Some(from_env(value)?),
                "format" => format = Some(value.to_owned()),
                "to" => filter = filter.to(states(value, key, &at)?),
                "from" => filter = filter.from(states(value, key, &at)?),
                "agents" => filter = filter.agents(value.split('|').filter(|p| !p.is_empty())),
                other => {
                    return Err(format!(
                        "--webhook {at}: unknown option {other:?}; the syntax is {WEBHOOK_SYNTAX}"
                    ));
                }
            }
        }
        let format = match (format.as_deref(), routing_key) {
            (None | Some("json"), None) => WebhookFormat::Json,
            (Some("slack"), None) => WebhookFormat::Slack,
            (Some("pagerduty"), Some(routing_key)) => WebhookFormat::PagerDuty { routing_key },
            (Some("pagerduty"), None) => {
                return Err(format!(
                    "--webhook {at}: format=pagerduty needs routing-key=K or routing-key-env=VAR \
                     (the integration key of an Events API v2 service)"
                ));
            }
            (Some("json" | "slack") | None, Some(_)) => {
                return Err(format!(
                    "--webhook {at}: a routing key is for format=pagerduty only"
                ));
            }
            (Some(other), _) => {
                return Err(format!(
                    "--webhook {at}: unknown format {other:?}; give json, slack or pagerduty"
                ));
            }
        };
        let mut options = WebhookOptions::new().format(format).filter(filter);
        if let Some(secret) = secret {
            options = options.secret(secret);
        }
        Ok(Webhook { url, options })
    }
}

fn states(value: &str, key: &str, at: &str) -> Result<Vec<CircuitState>, String> {
    value
        .split('|')
        .map(|s| {
            s.parse().map_err(|_| {
                format!(
                    "--webhook {at}: {key}={value}: {s:?} is not a state; give closed, open, \
                     half_open, forced_open or forced_closed, separated by |"
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(raw: &str) -> WebhookArg {
        raw.parse().unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_bare_url_has_the_default_options() {
        let hook = arg("https://example.com/hook").parse(no_env).unwrap();
        assert_eq!(hook.url, "https://example.com/hook");
        assert_eq!(
            format!("{:?}", hook.options),
            format!("{:?}", WebhookOptions::new())
        );
    }

    #[test]
    fn options_follow_the_url_separated_by_spaces() {
        let hook = arg(
            "https://events.pagerduty.com/v2/enqueue  format=pagerduty routing-key-env=PD \
             to=open|closed agents=agent-*|gpu-1 secret=0123456789abcdef-xyz",
        )
        .parse(|v| (v == "PD").then(|| "ROUTINGKEY".to_owned()))
        .unwrap();
        let shown = format!("{:?}", hook.options);
        assert!(shown.contains("PagerDuty { routing_key: set }"), "{shown}");
        assert!(shown.contains("secret: Some(\"set\")"), "{shown}");
        assert!(
            shown.contains("to: [Closed, Open]") || shown.contains("to: [Open, Closed]"),
            "{shown}"
        );
        assert!(shown.contains("\"agent-*\", \"gpu-1\""), "{shown}");
    }

    #[test]
    fn mistakes_are_named_without_the_secret() {
        for (raw, expected) in [
            (
                "https://x.example/h format=teams",
                "unknown format \"teams\"",
            ),
            ("https://x.example/h to=opened", "\"opened\" is not a state"),
            (
                "https://x.example/h colour=red",
                "unknown option \"colour\"",
            ),
            ("https://x.example/h secret", "not KEY=VALUE"),
            ("https://x.example/h format=pagerduty", "needs routing-key"),
            ("https://x.example/h routing-key=k", "format=pagerduty only"),
            (
                "https://x.example/h secret=hunter2hunter2xx secret-env=S",
                "secret is given twice",
            ),
            ("https://x.example/h secret-env=NOPE", "NOPE is not set"),
            ("", "empty"),
        ] {
            let error = arg(raw).parse(no_env).unwrap_err();
            assert!(error.contains(expected), "{raw}: {error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn debug_and_shown_hide_secrets_and_passwords() {
        let raw = arg(
            "https://bot:hookpass@x.example/h secret=hunter2hunter2xx routing-key=RK9 format=slack",
        );
        let debug = format!("{raw:?}");
        for secret in ["hookpass", "hunter2", "RK9"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert_eq!(
            raw.shown(),
            "https://bot:set@x.example/h secret=set routing-key=set format=slack"
        );
    }
}
