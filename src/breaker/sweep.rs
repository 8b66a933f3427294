//! The sweeper: now and then asks the store to forget the agents left
//! alone for `idle_ttl` ([`BreakerStore::sweep_idle`](crate::store::BreakerStore::sweep_idle)).
//!
//! Every pod runs one; on Redis a lease lets one pod of the fleet sweep per
//! interval, so the cost is one `SET NX` per pod per interval and one pass
//! over the agents set per fleet.

use std::sync::Weak;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Inner;

/// The longest pause between two sweeps.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// The pause before the first sweep: not at once (a fleet restarting its
/// pods would sweep at each start), but well within a rolling deploy.
const FIRST_SWEEP_AFTER: Duration = Duration::from_secs(60);

/// The sweeper task; stops when the breaker is dropped.
#[derive(Debug)]
pub(super) struct Sweeper {
    task: JoinHandle<()>,
}

impl Sweeper {
    /// Spawns the sweeper of a breaker whose config has an `idle_ttl`: a
    /// sweep a minute after start (sooner for a shorter `idle_ttl`), then
    /// every `idle_ttl`, at most every hour.
    pub(super) fn spawn(breaker: Weak<Inner>, idle_ttl: Duration) -> Self {
        let interval = idle_ttl.min(MAX_INTERVAL);
        let task = tokio::spawn(async move {
            tokio::time::sleep(FIRST_SWEEP_AFTER.min(interval)).await;
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = breaker.upgrade() else {
                    break;
                };
                if inner.health.is_degraded() {
                    continue;
                }
                match inner.store.sweep_idle(&inner.config).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(agents = n, "forgot agents idle for idle_ttl"),
                    Err(error) => {
                        tracing::debug!(%error, "sweep of idle agents failed; next interval")
                    }
                }
            }
        });
        Self { task }
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
