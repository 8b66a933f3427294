//! The fleet's process-wide configs, compared (see
//! [`BreakerStore::fleet_configs`](crate::store::BreakerStore::fleet_configs)):
//! one hash, `PREFIX:configs`, of instance id to `"FINGERPRINT WRITTEN_MS"`.
//!
//! ## Behavior
//!
//! - Each pod writes its own entry (`HSET`) with Redis's time (`TIME`), at
//!   start and every minute, then reads them all (`HGETALL`): four commands
//!   a pod a minute.
//! - An entry not rewritten for [`STALE_AFTER`] (a pod gone, or renamed) is
//!   ignored, and removed (`HDEL`) by the pod that finds it; so is one that
//!   does not read as a fingerprint and a time.
//! - Not an agent's key and not in a script: on a cluster it lives in the
//!   prefix's own slot, and no script reads it.

use std::collections::HashMap;
use std::time::Duration;

use super::RedisStore;
use crate::store::{FleetConfig, StoreError};

/// An entry older than this is a pod that stopped: ignored and removed.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(600);

impl RedisStore {
    /// Writes this pod's entry, and answers the fleet's live ones.
    pub(super) async fn publish_fleet_config(
        &self,
        instance: &str,
        fingerprint: &str,
    ) -> Result<Vec<FleetConfig>, StoreError> {
        let key = self.keys().configs();
        let now_ms = match &self.inner.clock_override {
            Some(clock) => clock.now_ms(),
            None => self.server_time_ms().await?,
        };
        let mut write = ::redis::cmd("HSET");
        write
            .arg(&key)
            .arg(instance)
            .arg(format!("{fingerprint} {now_ms}"));
        let _: u64 = self.query(&write, "configs hash").await?;
        let mut read = ::redis::cmd("HGETALL");
        read.arg(&key);
        let entries: HashMap<String, String> = self.query(&read, "configs hash").await?;
        let stale_before = now_ms.saturating_sub(STALE_AFTER.as_millis() as u64);
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for (pod, value) in entries {
            match parse(&value) {
                Some((fingerprint, written_ms)) if written_ms >= stale_before => {
                    live.push(FleetConfig {
                        instance: pod,
                        fingerprint,
                        written_ms,
                    });
                }
                _ => dead.push(pod),
            }
        }
        if !dead.is_empty() {
            tracing::debug!(pods = ?dead, key, "removing config fingerprints older than 10 minutes or unreadable");
            let mut remove = ::redis::cmd("HDEL");
            remove.arg(&key).arg(&dead);
            let _: u64 = self.query(&remove, "configs hash").await?;
        }
        live.sort_by(|a, b| a.instance.cmp(&b.instance));
        Ok(live)
    }
}

/// `"FINGERPRINT WRITTEN_MS"`: 40 hex digits and a whole number.
fn parse(value: &str) -> Option<(String, u64)> {
    let (fingerprint, written) = value.split_once(' ')?;
    let hex = fingerprint.len() == 40 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit());
    Some((fingerprint.to_owned(), written.parse().ok()?)).filter(|_| hex)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn an_entry_is_a_fingerprint_and_a_time() {
        let fp = "a".repeat(40);
        assert_eq!(parse(&format!("{fp} 17")), Some((fp.clone(), 17)));
        assert_eq!(parse(&format!("{fp}17")), None);
        assert_eq!(parse("zz 17"), None);
        assert_eq!(parse(&format!("{fp} soon")), None);
    }
}
