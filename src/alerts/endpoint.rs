//! One webhook: its validated URL, how it is shown, and one POST attempt.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Client, Url};

use super::AlertsError;
use super::options::WebhookOptions;
use super::payload::{SIGNATURE_HEADER, TIMESTAMP_HEADER, render, signature};
use crate::Transition;
use crate::store::redact_url;

/// The header that carries the delivery id, the same on every retry of one
/// transition, so that receivers can drop duplicates.
pub const DELIVERY_HEADER: &str = "X-Fleet-Breaker-Delivery";

/// The header that carries the attempt number (1 for the first try).
pub const ATTEMPT_HEADER: &str = "X-Fleet-Breaker-Attempt";

/// A webhook URL, checked.
#[derive(Clone)]
pub(super) struct Endpoint {
    url: Url,
    /// The URL with its password, if any, shown as `set`: for logs, metrics
    /// labels, dead letters and the consumer group's name.
    shown: String,
    options: WebhookOptions,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Endpoint {
    /// Parses `raw`: an absolute `http` or `https` URL with a host, with
    /// default options.
    #[cfg(test)]
    pub(super) fn parse(raw: &str) -> Result<Self, AlertsError> {
        Self::with_options(raw, WebhookOptions::default())
    }

    /// Parses `raw` (see [`Self::parse`]) and checks `options`.
    pub(super) fn with_options(raw: &str, options: WebhookOptions) -> Result<Self, AlertsError> {
        let invalid = |reason: String| AlertsError::InvalidUrl {
            url: redact_url(raw),
            reason,
        };
        let url = Url::parse(raw.trim()).map_err(|e| {
            invalid(format!(
                "{e}; give an absolute URL such as https://alerts.example.com/hook"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "the scheme is {:?}; only http and https webhooks are supported",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("the URL has no host".to_owned()));
        }
        let shown = if url.password().is_some() {
            let mut shown = url.clone();
            // Cannot fail: the URL has a host, so it can hold a password.
            let _ = shown.set_password(Some("set"));
            shown.to_string()
        } else {
            url.to_string()
        };
        options
            .check()
            .map_err(|reason| AlertsError::InvalidSettings(format!("webhook {shown}: {reason}")))?;
        Ok(Self {
            url,
            shown,
            options,
        })
    }

    /// The body to POST for `transition` (whose JSON is `raw_json`), or
    /// `None` when this webhook's filter or format leaves it out.
    pub(super) fn body_for(
        &self,
        transition: &Transition,
        raw_json: &[u8],
        prefix: &str,
    ) -> Option<Vec<u8>> {
        if !self.options.filter.allows(transition) {
            return None;
        }
        render(&self.options.format, transition, raw_json, prefix)
    }

    /// The URL as logs and Redis show it (password as `set`).
    pub(super) fn shown(&self) -> &str {
        &self.shown
    }

    /// POSTs `body` (transition JSON) once, bounded by `timeout`.
    ///
    /// `Ok` on a 2xx answer; otherwise what went wrong, without the URL
    /// (it may hold a secret).
    pub(super) async fn post(
        &self,
        client: &Client,
        body: Vec<u8>,
        delivery_id: &str,
        attempt: u64,
        timeout: Duration,
    ) -> Result<(), String> {
        let mut request = client
            .post(self.url.clone())
            .timeout(timeout)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(ATTEMPT_HEADER, attempt);
        if let Ok(id) = HeaderValue::from_str(delivery_id) {
            request = request.header(DELIVERY_HEADER, id);
        }
        if let Some(secret) = &self.options.secret {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            request = request
                .header(TIMESTAMP_HEADER, now)
                .header(SIGNATURE_HEADER, signature(secret.as_bytes(), now, &body));
        }
        match request.body(body).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("HTTP status {}", response.status())),
            Err(e) if e.is_timeout() => Err(format!("no answer within {timeout:?}")),
            Err(e) => Err(error_chain(&e.without_url())),
        }
    }
}

/// An error and its sources, `a: b: c`, for a log line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host_are_accepted() {
        assert!(Endpoint::parse("https://example.com/hook").is_ok());
        assert!(Endpoint::parse("http://127.0.0.1:8080").is_ok());
        for bad in [
            "ftp://example.com/x",
            "example.com/hook",
            "",
            "file:///tmp/x",
            "mailto:a@b",
        ] {
            let error = Endpoint::parse(bad).unwrap_err();
            assert!(error.is_invalid_input(), "{bad}: {error}");
        }
        let error = Endpoint::parse("ftp://example.com")
            .unwrap_err()
            .to_string();
        assert!(error.contains("only http and https"), "{error}");
    }

    #[test]
    fn passwords_are_never_shown() {
        let endpoint = Endpoint::parse("https://bot:hunter2@example.com/hook").unwrap();
        assert_eq!(endpoint.shown(), "https://bot:set@example.com/hook");
        assert!(!format!("{endpoint:?}").contains("hunter2"));
        let error = Endpoint::parse("gopher://bot:hunter2@example.com/")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert_eq!(redact_url("x://u:p@h/a@b"), "x://u:set@h/a@b");
    }
}
