//! What became of delivery attempts: per-URL counters and the observer hook.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What became of one delivery attempt, as counted by [`EndpointStats`] and
/// told to the [observer](super::WebhooksBuilder::observer).
///
/// The same outcomes as the `outcome` label of the
/// `webhook_deliveries` series of `fleet_breaker::http::Metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeliveryOutcome {
    /// The endpoint answered 2xx; the transition is acknowledged.
    Delivered,
    /// The attempt failed and will be retried.
    Failed,
    /// The last try failed (or the transition could not be tried): it went
    /// to the dead letters.
    DeadLettered,
    /// The webhook's filter or format leaves the transition out: it is
    /// acknowledged without a POST.
    Filtered,
    /// The stream entry is not a transition (written by something else): it
    /// is acknowledged without a POST.
    Malformed,
}

impl DeliveryOutcome {
    /// `delivered`, `failed`, `dead_lettered`, `filtered` or `malformed`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::DeadLettered => "dead_lettered",
            Self::Filtered => "filtered",
            Self::Malformed => "malformed",
        }
    }
}

impl fmt::Display for DeliveryOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The attempts one running [`WebhookHandle`](super::WebhookHandle) made to
/// one URL, since it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStats {
    /// The URL, its password (if any) shown as `set`.
    pub url: String,
    /// Transitions the URL accepted (2xx).
    pub delivered: u64,
    /// Attempts that failed and were left to retry.
    pub failed: u64,
    /// Transitions given up on and dead-lettered.
    pub dead_lettered: u64,
    /// Transitions the webhook's filter or format left out (acknowledged
    /// without a POST).
    pub filtered: u64,
    /// Stream entries that were not transitions (skipped, acknowledged).
    pub malformed: u64,
}

/// Called with the URL (password shown as `set`) and the outcome of every
/// attempt; see [`WebhooksBuilder::observer`](super::WebhooksBuilder::observer).
pub(super) type Observer = Arc<dyn Fn(&str, DeliveryOutcome) + Send + Sync>;

/// The counters of one handle, one set per URL, and the observer.
pub(super) struct Stats {
    urls: Vec<(String, [AtomicU64; 5])>,
    observer: Option<Observer>,
}

impl Stats {
    pub(super) fn new(urls: impl IntoIterator<Item = String>, observer: Option<Observer>) -> Self {
        Self {
            urls: urls
                .into_iter()
                .map(|url| (url, Default::default()))
                .collect(),
            observer,
        }
    }

    /// Counts one outcome for the URL at `index`, then tells the observer
    /// (no lock is held while it runs).
    pub(super) fn record(&self, index: usize, outcome: DeliveryOutcome) {
        let Some((url, counters)) = self.urls.get(index) else {
            return;
        };
        let slot = match outcome {
            DeliveryOutcome::Delivered => 0,
            DeliveryOutcome::Failed => 1,
            DeliveryOutcome::DeadLettered => 2,
            DeliveryOutcome::Filtered => 3,
            DeliveryOutcome::Malformed => 4,
        };
        counters[slot].fetch_add(1, Ordering::Relaxed);
        if let Some(observer) = &self.observer {
            observer(url, outcome);
        }
    }

    pub(super) fn snapshot(&self) -> Vec<EndpointStats> {
        self.urls
            .iter()
            .map(
                |(url, [delivered, failed, dead, filtered, malformed])| EndpointStats {
                    url: url.clone(),
                    delivered: delivered.load(Ordering::Relaxed),
                    failed: failed.load(Ordering::Relaxed),
                    dead_lettered: dead.load(Ordering::Relaxed),
                    filtered: filtered.load(Ordering::Relaxed),
                    malformed: malformed.load(Ordering::Relaxed),
                },
            )
            .collect()
    }
}
