//! Pods that disagree: every breaker on a shared store publishes a
//! fingerprint of its process-wide [`BreakerConfig`] under its instance id,
//! and compares it with the other pods' (DESIGN.md section 2, "Per-agent
//! settings": pods with different process settings must not disagree
//! silently).
//!
//! ## Behavior
//!
//! - The fingerprint is the SHA-1, in hex, of the config's JSON: any field
//!   that differs, policies and `idle_ttl` included, makes another.
//! - The check runs at start and every minute, through
//!   [`BreakerStore::fleet_configs`](crate::store::BreakerStore::fleet_configs);
//!   not while degraded, not on a store that is not shared (the embedded
//!   one), not for a breaker built with
//!   [`config_check(false)`](super::CircuitBreakerBuilder::config_check)
//!   (a command-line tool's).
//! - When the set of differing pods changes, one `WARN` names this pod,
//!   its fingerprint and each other pod with its own; when they agree again,
//!   one `INFO`. Health (`config_mismatch`) and `/metrics`
//!   (`fleet_breaker_config_mismatch`) show the last result.
//! - Per-agent settings ([`AgentSettings`](crate::config::AgentSettings))
//!   are in the store and shared: they never differ between pods.

use std::collections::BTreeMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::{BreakerError, CircuitBreaker, Inner};
use crate::config::BreakerConfig;
use crate::store::{BreakerStore, StoreError};

/// How often a pod publishes its fingerprint and compares.
pub(super) const CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// What this pod knows of the fleet's process-wide configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigAgreement {
    /// This pod's instance id.
    pub instance: String,
    /// The SHA-1, in hex, of this pod's [`BreakerConfig`] as JSON.
    pub fingerprint: String,
    /// Whether the fleet's fingerprints were read (a shared store, checked
    /// at least once); `false` says nothing about the other pods.
    pub compared: bool,
    /// The pods whose config differs from this one's: instance id to
    /// fingerprint. Empty when they all agree.
    pub differing: BTreeMap<String, String>,
}

impl ConfigAgreement {
    /// Whether some pod runs with another process-wide config.
    #[must_use]
    pub fn is_mismatch(&self) -> bool {
        !self.differing.is_empty()
    }
}

/// The SHA-1, in hex, of `config`'s JSON.
#[must_use]
pub fn config_fingerprint(config: &BreakerConfig) -> String {
    let json = serde_json::to_string(config).expect("a config serialises");
    sha1_smol::Sha1::from(json.as_bytes()).digest().to_string()
}

/// The pod's last comparison.
#[derive(Debug)]
pub(super) struct Agreement {
    last: Mutex<ConfigAgreement>,
}

impl Agreement {
    pub(super) fn new(config: &BreakerConfig, instance: &str) -> Self {
        Self {
            last: Mutex::new(ConfigAgreement {
                instance: instance.to_owned(),
                fingerprint: config_fingerprint(config),
                compared: false,
                differing: BTreeMap::new(),
            }),
        }
    }

    pub(super) fn last(&self) -> ConfigAgreement {
        self.last.lock().expect("agreement lock").clone()
    }

    /// Publishes and compares; logs a change.
    async fn check(&self, store: &dyn BreakerStore) -> Result<ConfigAgreement, StoreError> {
        let mut now = self.last();
        let Some(fleet) = store.fleet_configs(&now.instance, &now.fingerprint).await? else {
            return Ok(now);
        };
        now.compared = true;
        now.differing = fleet
            .into_iter()
            .filter(|pod| pod.instance != now.instance && pod.fingerprint != now.fingerprint)
            .map(|pod| (pod.instance, pod.fingerprint))
            .collect();
        let before =
            std::mem::replace(&mut *self.last.lock().expect("agreement lock"), now.clone());
        if before.differing != now.differing {
            if now.is_mismatch() {
                tracing::warn!(
                    instance = %now.instance,
                    fingerprint = %now.fingerprint,
                    differing = ?now.differing,
                    "pods of this fleet run with different process-wide breaker configs: \
                     they trip the same agents differently; give every pod the same config \
                     (per-agent settings, `fleet-breaker config`, are shared)"
                );
            } else {
                tracing::info!(
                    instance = %now.instance,
                    fingerprint = %now.fingerprint,
                    "every pod of this fleet runs with the same process-wide breaker config again"
                );
            }
        }
        Ok(now)
    }
}

impl CircuitBreaker {
    /// What this pod last learned of the fleet's process-wide configs:
    /// whether another pod sharing the store runs with a different
    /// [`BreakerConfig`] (see [`ConfigAgreement`]). Checked at start and
    /// every minute.
    #[must_use]
    pub fn config_agreement(&self) -> ConfigAgreement {
        self.inner.agreement.last()
    }

    /// Publishes this pod's config fingerprint and compares it with the
    /// fleet's now, as the minutely check does.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Store`] when the store fails.
    pub async fn check_config_agreement(&self) -> Result<ConfigAgreement, BreakerError> {
        Ok(self.inner.agreement.check(&*self.inner.store).await?)
    }
}

/// The minutely check; stops when the breaker is dropped.
#[derive(Debug)]
pub(super) struct Checker {
    task: JoinHandle<()>,
}

impl Checker {
    /// Spawns the check of `breaker`: at once, then every minute.
    pub(super) fn spawn(breaker: Weak<Inner>) -> Self {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(CHECK_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = breaker.upgrade() else {
                    break;
                };
                if inner.health.is_degraded() {
                    continue;
                }
                if let Err(error) = inner.agreement.check(&*inner.store).await {
                    tracing::debug!(%error, "config fingerprints: check failed; next minute");
                }
            }
        });
        Self { task }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
