//! The bodies of the built-in formats, and the signature headers.

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::options::WebhookFormat;
use crate::clock::iso8601;
use crate::{CircuitState, Transition};

/// The header with the signing time, Unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Fleet-Breaker-Timestamp";

/// The header with the signature: `v1=` and the lowercase hex of
/// HMAC-SHA256(secret, `TIMESTAMP.BODY`).
pub const SIGNATURE_HEADER: &str = "X-Fleet-Breaker-Signature";

/// `v1=` and the hex HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`:
/// the value of [`SIGNATURE_HEADER`]. Receivers can call it to verify
/// (then compare in constant time, and check the timestamp's age).
#[must_use]
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    format!(
        "v1={}",
        hmac_hex(secret, &[timestamp.to_string().as_bytes(), b".", body])
    )
}

/// The lowercase hex HMAC-SHA256 of the concatenated `parts` under `key`.
fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    use std::fmt::Write as _;
    // HMAC takes a key of any length: `new_from_slice` cannot fail here.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    for part in parts {
        mac.update(part);
    }
    let mut out = String::with_capacity(64);
    for byte in mac.finalize().into_bytes() {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The body of `transition` in `format`; `None` when the format does not
/// send this kind of transition (PagerDuty and `half_open`).
pub(super) fn render(
    format: &WebhookFormat,
    transition: &Transition,
    raw_json: &[u8],
    prefix: &str,
) -> Option<Vec<u8>> {
    match format {
        WebhookFormat::Json => Some(raw_json.to_vec()),
        WebhookFormat::Slack => {
            serde_json::to_vec(&json!({ "text": slack_text(transition, prefix) })).ok()
        }
        WebhookFormat::PagerDuty { routing_key } => {
            let dedup_key = format!("fleet-breaker/{prefix}/{}", transition.agent_id);
            let body = match transition.to {
                CircuitState::Open | CircuitState::ForcedOpen => json!({
                    "routing_key": routing_key,
                    "event_action": "trigger",
                    "dedup_key": dedup_key,
                    "payload": {
                        "summary": summary(transition, prefix),
                        "source": transition.agent_id.as_str(),
                        "severity": if transition.to == CircuitState::Open { "error" } else { "warning" },
                        "timestamp": iso8601(transition.at_ms),
                        "component": prefix,
                        "custom_details": serde_json::from_slice::<serde_json::Value>(raw_json).ok()?,
                    },
                }),
                CircuitState::Closed | CircuitState::ForcedClosed => json!({
                    "routing_key": routing_key,
                    "event_action": "resolve",
                    "dedup_key": dedup_key,
                }),
                CircuitState::HalfOpen => return None,
            };
            serde_json::to_vec(&body).ok()
        }
    }
}

/// One line: `fleet-breaker/PREFIX: agent-1 closed -> open (failure_threshold), backoff 1.5 s`.
fn summary(t: &Transition, prefix: &str) -> String {
    format!(
        "fleet-breaker/{prefix}: circuit of {} {} -> {} ({}), backoff {} s",
        t.agent_id,
        t.from.as_str(),
        t.to.as_str(),
        t.reason.as_str(),
        t.backoff_seconds
    )
}

fn slack_text(t: &Transition, prefix: &str) -> String {
    let icon = match t.to {
        CircuitState::Open | CircuitState::ForcedOpen => ":red_circle:",
        CircuitState::HalfOpen => ":large_yellow_circle:",
        CircuitState::Closed | CircuitState::ForcedClosed => ":large_green_circle:",
    };
    format!(
        "{icon} *fleet-breaker/{prefix}*: circuit of `{}` {} -> *{}* ({}), backoff {} s, generation {}",
        t.agent_id,
        t.from.as_str(),
        t.to.as_str(),
        t.reason.as_str(),
        t.backoff_seconds,
        t.generation
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_hex(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            signature(b"Jefe", 1_732_680_000, b"{}"),
            format!("v1={}", hmac_hex(b"Jefe", &[b"1732680000.{}"]))
        );
    }
}
