//! [`WebhooksBuilder`] and [`Webhooks`]: the checked settings of the alert
//! hooks, ready to spawn.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::AlertsError;
use super::endpoint::Endpoint;
use super::options::WebhookOptions;
use super::stats::{DeliveryOutcome, Observer};

/// The default number of tries of one transition before it is dead-lettered.
pub const DEFAULT_MAX_TRIES: u32 = 5;
/// The default delay after a first failed attempt (doubled after each
/// further one).
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The default longest delay between two attempts.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// The default bound on one attempt (connect, send, answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default idle time after which another instance's pending delivery is
/// taken over.
pub const DEFAULT_RECLAIM_IDLE: Duration = Duration::from_secs(30);
/// The default longest wait for new transitions before due retries are
/// looked for again (`XREADGROUP ... BLOCK`).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The default cap of the dead-letter stream (`XADD MAXLEN ~`).
pub const DEFAULT_DEAD_LETTER_MAX_LEN: u64 = 10_000;

/// The user agent of every POST.
const USER_AGENT: &str = concat!("fleet-breaker/", env!("CARGO_PKG_VERSION"));

/// Builds [`Webhooks`]; every setting has a default but the URLs.
#[must_use]
pub struct WebhooksBuilder {
    urls: Vec<(String, WebhookOptions)>,
    max_tries: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    timeout: Duration,
    reclaim_idle: Duration,
    poll_interval: Duration,
    dead_letter_max_len: u64,
    consumer: Option<String>,
    observer: Option<Observer>,
}

impl fmt::Debug for WebhooksBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhooksBuilder")
            .field("urls", &self.urls.len())
            .field("max_tries", &self.max_tries)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("timeout", &self.timeout)
            .field("reclaim_idle", &self.reclaim_idle)
            .field("poll_interval", &self.poll_interval)
            .field("dead_letter_max_len", &self.dead_letter_max_len)
            .field("consumer", &self.consumer)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl WebhooksBuilder {
    pub(super) fn new(urls: Vec<String>) -> Self {
        Self {
            urls: urls
                .into_iter()
                .map(|url| (url, WebhookOptions::default()))
                .collect(),
            max_tries: DEFAULT_MAX_TRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
            timeout: DEFAULT_TIMEOUT,
            reclaim_idle: DEFAULT_RECLAIM_IDLE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            dead_letter_max_len: DEFAULT_DEAD_LETTER_MAX_LEN,
            consumer: None,
            observer: None,
        }
    }

    /// Adds a webhook to `url` with its own `options`: a signing secret,
    /// a filter, a payload format (Slack, PagerDuty). The URLs given to
    /// [`Webhooks::builder`] have the default options.
    ///
    /// ```
    /// use fleet_breaker::CircuitState;
    /// use fleet_breaker::alerts::{WebhookFilter, WebhookFormat, WebhookOptions, Webhooks};
    ///
    /// let hooks = Webhooks::builder(Vec::<String>::new())
    ///     .webhook(
    ///         "https://hooks.slack.com/services/T0/B0/XXXX",
    ///         WebhookOptions::new()
    ///             .format(WebhookFormat::Slack)
    ///             .filter(WebhookFilter::new().to([CircuitState::Open, CircuitState::Closed])),
    ///     )
    ///     .webhook(
    ///         "https://alerts.example.com/breaker",
    ///         WebhookOptions::new()
    ///             .secret("a shared secret of 16 bytes or more")
    ///             .filter(WebhookFilter::new().agents(["gpu-*"])),
    ///     )
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(hooks.urls().len(), 2);
    /// ```
    pub fn webhook(mut self, url: impl Into<String>, options: WebhookOptions) -> Self {
        self.urls.push((url.into(), options));
        self
    }

    /// Tries of one transition per URL, the first included, before it is
    /// dead-lettered (default [`DEFAULT_MAX_TRIES`], at least 1).
    pub fn max_tries(mut self, tries: u32) -> Self {
        self.max_tries = tries;
        self
    }

    /// The delay after the first failed attempt, doubled after each further
    /// one up to `max` (defaults [`DEFAULT_BACKOFF_BASE`],
    /// [`DEFAULT_BACKOFF_MAX`]). The delay runs from the start of the failed
    /// attempt.
    pub fn retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// The bound on one attempt: connecting, sending and the answer's status
    /// (default [`DEFAULT_TIMEOUT`]). A timed-out attempt is a failed one.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Redis only: how long a delivery must sit unacknowledged with another
    /// instance before this one takes it over (default
    /// [`DEFAULT_RECLAIM_IDLE`]). Must be longer than the
    /// [`timeout`](Self::timeout), so an attempt still running elsewhere is
    /// not taken over.
    pub fn reclaim_idle(mut self, idle: Duration) -> Self {
        self.reclaim_idle = idle;
        self
    }

    /// Redis only: the longest wait for new transitions before due retries
    /// and stalled deliveries are looked for again (default
    /// [`DEFAULT_POLL_INTERVAL`], 1 ms to 1 hour).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Redis only: the approximate cap of the dead-letter stream
    /// `PREFIX:webhooks:dead` (default [`DEFAULT_DEAD_LETTER_MAX_LEN`]).
    pub fn dead_letter_max_len(mut self, len: u64) -> Self {
        self.dead_letter_max_len = len;
        self
    }

    /// Redis only: this instance's consumer name in the consumer groups. It
    /// must be unique among the running instances: two instances with one
    /// name take each other's deliveries for their own. Default
    /// `HOSTNAME-PID-RANDOM` (`fleet-breaker` without `HOSTNAME`).
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = Some(name.into());
        self
    }

    /// Calls `observer` with the URL (password shown as `set`) and the
    /// outcome of every attempt, from the delivery tasks: keep it quick.
    /// Default: none. `fleet_breaker::http::Metrics::webhook_delivery`
    /// fits here, to count them in `/metrics`.
    pub fn observer(
        mut self,
        observer: impl Fn(&str, DeliveryOutcome) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Checks the URLs and settings and builds the HTTP client.
    ///
    /// An empty list of URLs is valid: the handles spawned then do nothing.
    ///
    /// # Errors
    ///
    /// [`AlertsError::InvalidUrl`] for a URL that is not absolute `http` or
    /// `https` with a host, or given twice; [`AlertsError::InvalidSettings`]
    /// for zero tries, a zero backoff base or timeout, a backoff maximum below
    /// its base, a reclaim idle time not above the timeout, a poll interval
    /// outside 1 ms to 1 hour, or an empty consumer name;
    /// [`AlertsError::Client`] when the HTTP client cannot be built.
    pub fn build(self) -> Result<Webhooks, AlertsError> {
        let mut endpoints: Vec<Endpoint> = Vec::with_capacity(self.urls.len());
        for (raw, options) in self.urls {
            let endpoint = Endpoint::with_options(&raw, options)?;
            if endpoints.iter().any(|e| e.shown() == endpoint.shown()) {
                return Err(AlertsError::InvalidUrl {
                    url: endpoint.shown().to_owned(),
                    reason: "it is given twice; give each webhook once".to_owned(),
                });
            }
            endpoints.push(endpoint);
        }
        let invalid = |what: String| Err(AlertsError::InvalidSettings(what));
        if self.max_tries == 0 {
            return invalid("max_tries is 0; give at least 1 (the first try)".into());
        }
        if self.backoff_base.is_zero() || self.backoff_max < self.backoff_base {
            return invalid(format!(
                "retry backoff base {:?}, max {:?}: the base must be above zero and the max at \
                 least the base",
                self.backoff_base, self.backoff_max
            ));
        }
        if self.timeout.is_zero() {
            return invalid("the attempt timeout is 0; give at least 1 ms".into());
        }
        if self.reclaim_idle <= self.timeout {
            return invalid(format!(
                "reclaim_idle {:?} is not above the attempt timeout {:?}; an attempt still \
                 running on another instance would be taken over and sent twice",
                self.reclaim_idle, self.timeout
            ));
        }
        if self.poll_interval < Duration::from_millis(1)
            || self.poll_interval > Duration::from_secs(3600)
        {
            return invalid(format!(
                "poll_interval {:?} is outside 1 ms to 1 hour",
                self.poll_interval
            ));
        }
        let consumer = match self.consumer {
            Some(name) if name.trim().is_empty() => {
                return invalid("the consumer name is empty".into());
            }
            Some(name) => name,
            None => default_consumer(),
        };
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            // A redirect is the receiver's mistake; follow none, and count
            // a 3xx as a failed attempt.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AlertsError::Client(e.to_string()))?;
        Ok(Webhooks {
            endpoints: endpoints.into(),
            settings: Arc::new(Settings {
                max_tries: self.max_tries,
                backoff_base: self.backoff_base,
                backoff_max: self.backoff_max,
                timeout: self.timeout,
                reclaim_idle: self.reclaim_idle,
                poll_interval: self.poll_interval,
                dead_letter_max_len: self.dead_letter_max_len,
                consumer,
            }),
            client,
            observer: self.observer,
        })
    }
}

fn default_consumer() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| "fleet-breaker".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}

/// The checked settings every delivery task reads.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) max_tries: u32,
    pub(super) backoff_base: Duration,
    pub(super) backoff_max: Duration,
    pub(super) timeout: Duration,
    pub(super) reclaim_idle: Duration,
    pub(super) poll_interval: Duration,
    pub(super) dead_letter_max_len: u64,
    pub(super) consumer: String,
}

impl Settings {
    /// The delay after `tries` failed attempts (at least 1): the base,
    /// doubled per further attempt, at most the max.
    pub(super) fn backoff(&self, tries: u64) -> Duration {
        let doublings = u32::try_from(tries.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(30);
        self.backoff_base
            .saturating_mul(1 << doublings)
            .min(self.backoff_max)
    }
}

/// Webhooks that POST every transition to each URL; built by
/// [`Webhooks::builder`], started by [`spawn_redis`](Self::spawn_redis) or
/// [`spawn_in_process`](Self::spawn_in_process). See the [module docs](super).
///
/// Cheap to clone. Debug shows URLs with their password as `set`.
#[derive(Clone)]
pub struct Webhooks {
    pub(super) endpoints: Arc<[Endpoint]>,
    pub(super) settings: Arc<Settings>,
    pub(super) client: reqwest::Client,
    pub(super) observer: Option<Observer>,
}

impl fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhooks")
            .field("urls", &self.endpoints)
            .field("settings", &self.settings)
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// A builder for webhooks to `urls` (each `http://` or `https://`).
    pub fn builder<I>(urls: I) -> WebhooksBuilder
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        WebhooksBuilder::new(urls.into_iter().map(Into::into).collect())
    }

    /// The URLs, in the order given, their password (if any) shown as `set`.
    #[must_use]
    pub fn urls(&self) -> Vec<&str> {
        self.endpoints.iter().map(Endpoint::shown).collect()
    }

    /// This instance's consumer name in the Redis consumer groups.
    #[must_use]
    pub fn consumer_name(&self) -> &str {
        &self.settings.consumer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_max() {
        let hooks = Webhooks::builder(["http://127.0.0.1:1/"])
            .retry_backoff(Duration::from_millis(100), Duration::from_millis(500))
            .build()
            .unwrap();
        let delays: Vec<_> = (1..=5).map(|t| hooks.settings.backoff(t)).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(delays, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
        assert_eq!(hooks.settings.backoff(u64::MAX), ms(500));
    }

    #[test]
    fn nonsense_settings_are_refused_with_the_rule() {
        let base = || Webhooks::builder(["https://example.com/a"]);
        let refused = [
            base().max_tries(0).build(),
            base()
                .retry_backoff(Duration::ZERO, Duration::from_secs(1))
                .build(),
            base()
                .retry_backoff(Duration::from_secs(2), Duration::from_secs(1))
                .build(),
            base()
                .timeout(Duration::from_secs(5))
                .reclaim_idle(Duration::from_secs(5))
                .build(),
            base().poll_interval(Duration::ZERO).build(),
            base().consumer(" ").build(),
        ];
        for result in refused {
            assert!(
                result.as_ref().unwrap_err().is_invalid_input(),
                "{result:?}"
            );
        }
        let twice = Webhooks::builder(["https://example.com/a", "https://example.com/a"])
            .build()
            .unwrap_err();
        assert!(twice.to_string().contains("twice"), "{twice}");
        assert!(Webhooks::builder(Vec::<String>::new()).build().is_ok());
    }
}
