//! A Rust pod for the Python package's mixed-language test
//! (`python/tests/test_mixed_fleet.py`): Rust and Python processes share one
//! Redis, and so one breaker per agent.
//!
//! ```text
//! py_interop fail        REDIS_URL PREFIX AGENT N     # N failed calls
//! py_interop expect-open REDIS_URL PREFIX AGENT       # waits for a rejection, prints "ready",
//!                                                     # on a stdin line tries 1,000 calls, prints
//!                                                     # the count, exits on the next line
//! py_interop probe       REDIS_URL PREFIX AGENT SECS  # prints "ready", then for SECS s holds
//!                                                     # every probe permit it gets
//! ```
//!
//! Config: threshold 5, 3 half-open probes, base backoff `BASE_BACKOFF_MS`
//! (default 200, so the first opening lasts 300 ms), the other settings as
//! default; the Python pods (`python/tests/pod.py`) use the same. Each mode
//! prints one line of JSON.

use std::io::BufRead;
use std::time::{Duration, Instant};

use fleet_breaker::{AgentId, BreakerConfig, CircuitBreaker, RedisStore};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// `max_staleness` is long so that no cache refresh (a script call) falls
/// in the test's measuring window by chance.
async fn breaker(url: &str, prefix: &str) -> Result<CircuitBreaker, AnyError> {
    let store = RedisStore::builder(url).prefix(prefix).build().await?;
    let base_backoff: u64 = match std::env::var("BASE_BACKOFF_MS") {
        Ok(ms) => ms.parse()?,
        Err(_) => 200,
    };
    let config = BreakerConfig::builder()
        .failure_threshold(5)
        .half_open_max_calls(3)
        .base_backoff(Duration::from_millis(base_backoff))
        .build()?;
    Ok(CircuitBreaker::builder()
        .store(store)
        .config(config)
        .max_staleness(Duration::from_secs(10))
        .build()?)
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, url, prefix, agent, rest @ ..] = args.as_slice() else {
        return Err("usage: py_interop MODE REDIS_URL PREFIX AGENT [N|SECS]".into());
    };
    let breaker = breaker(url, prefix).await?;
    let agent = AgentId::new(agent)?;
    match (mode.as_str(), rest) {
        ("fail", [n]) => {
            let mut failed = 0;
            for _ in 0..n.parse::<u32>()? {
                if let Ok(permit) = breaker.acquire(&agent).await {
                    permit.failure("rust pod: simulated failure").await;
                    failed += 1;
                }
            }
            println!("{{\"failed\": {failed}}}");
        }
        ("expect-open", []) => {
            let deadline = Instant::now() + Duration::from_secs(10);
            while breaker.acquire(&agent).await.is_ok() {
                if Instant::now() > deadline {
                    return Err("the circuit did not open within 10 s".into());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            println!("ready");
            tokio::task::spawn_blocking(|| std::io::stdin().lock().lines().next()).await?;
            let mut rejected = 0;
            for _ in 0..1000 {
                if breaker.acquire(&agent).await.is_err() {
                    rejected += 1;
                }
            }
            println!("{{\"rejected\": {rejected}}}");
            tokio::task::spawn_blocking(|| std::io::stdin().lock().lines().next()).await?;
        }
        ("probe", [secs]) => {
            let until = Instant::now() + Duration::from_secs_f64(secs.parse()?);
            println!("ready");
            let mut held = Vec::new();
            while Instant::now() < until {
                // A closed circuit's permit is dropped (neutral: nothing counted).
                if let Ok(permit) = breaker.acquire(&agent).await
                    && permit.is_probe()
                {
                    held.push(permit);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            println!("{{\"probes\": {}}}", held.len());
            // The leases lapse after recovery_timeout; the test is over by then.
            std::mem::forget(held);
        }
        _ => return Err(format!("unknown mode or arguments: {args:?}").into()),
    }
    Ok(())
}
