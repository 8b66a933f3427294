//! Fills a fleet with agents, for trying `serve` and the dashboard on a
//! realistic amount of state, and for measuring `serve` (see the figures
//! in docs/operations.md).
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release --example populate -- [AGENTS] [PREFIX]
//! ```
//!
//! Makes AGENTS agents (default 1,000) under PREFIX (default
//! `fleet-breaker`): one call each, and every tenth driven open by five
//! failures, so the fleet has closed and open circuits. Leaves them in place.
//! 64 agents at a time, each call with a 5 s store timeout: a call that
//! outlasted the default 100 ms would be decided locally (degraded mode)
//! and its agent never written; populate fails if that happened.

use std::time::Duration;

use fleet_breaker::{AgentId, CircuitBreaker, RedisStore};
use futures::StreamExt;

/// Agents populated at once.
const IN_FLIGHT: usize = 64;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("REDIS_URL") else {
        println!("populate writes to a Redis: set REDIS_URL, e.g.");
        println!(
            "  REDIS_URL=redis://127.0.0.1:6379 cargo run --release --example populate -- 1000"
        );
        return Ok(());
    };
    let count: usize = std::env::args().nth(1).map_or(Ok(1_000), |n| n.parse())?;
    let prefix = std::env::args()
        .nth(2)
        .unwrap_or_else(|| fleet_breaker::store::DEFAULT_PREFIX.to_owned());
    let store = RedisStore::builder(&url)
        .prefix(&prefix)
        .timeout(Duration::from_secs(5))
        .build()
        .await?;
    let breaker = CircuitBreaker::builder()
        .store(store)
        .local_cache(false)
        .build()?;
    let threshold = breaker.config().failure_threshold;
    let made: Vec<bool> = futures::stream::iter(0..count)
        .map(|i| {
            let breaker = breaker.clone();
            async move {
                let agent = AgentId::new(&format!("agent-{i:04}")).expect("a valid agent id");
                if i % 10 == 0 {
                    for _ in 0..threshold {
                        let _ = breaker.call(&agent, async { Err::<(), _>("down") }).await;
                    }
                    true
                } else {
                    let _ = breaker.call(&agent, async { Ok::<_, &str>(()) }).await;
                    false
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let open = made.into_iter().filter(|open| *open).count();
    println!("{}", summary(count, &prefix, &url, open));
    // Not a count of the agents set: at 100,000 agents one SMEMBERS outlasts
    // the store's timeouts. A pod that never went degraded wrote every call.
    let stats = breaker.store_stats();
    if stats.degraded_entered > 0 {
        return Err(format!(
            "{} store calls failed and the pod went degraded {} times: some agents may \
             not have reached the store; run populate again",
            stats.errors, stats.degraded_entered
        )
        .into());
    }
    Ok(())
}

/// The line populate ends with; the URL's password shows as `set`, as
/// everywhere the crate prints a URL.
fn summary(count: usize, prefix: &str, url: &str, open: usize) -> String {
    format!(
        "{count} agents under prefix {prefix:?} on {}: {open} open, {} closed",
        fleet_breaker::store::redact_url(url),
        count - open
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_summary_never_prints_the_password() {
        let line = super::summary(10, "p", "redis://fleet:hunter2@10.0.0.1:6379/0", 1);
        assert!(!line.contains("hunter2"), "{line}");
        assert!(line.contains("redis://fleet:set@10.0.0.1:6379/0"), "{line}");
        assert!(line.contains("1 open, 9 closed"), "{line}");
    }
}
