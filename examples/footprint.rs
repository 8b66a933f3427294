//! Redis cost of the breaker without the local cache: commands per
//! acquire+record pair on a closed circuit, and memory per agent.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release --example footprint [AGENTS] [--window]
//! ```
//!
//! Creates AGENTS agents (default 10,000) under a fresh prefix, reads
//! `INFO commandstats` before and after one acquire+record pair per agent,
//! sums `MEMORY USAGE` of every agent's keys, prints one JSON line, and
//! deletes its keys.
//!
//! `--window` measures an agent under the trip policies instead: a failure
//! rate over a 10 s window of 1 s buckets, a quorum of 3 (so the window
//! keeps 3 reporting pods), and settings of its own (3 fields in
//! `PREFIX:{AGENT}:config`); every one of the 10 buckets holds counts.

use std::sync::Arc;
use std::time::Duration;

use fleet_breaker::config::AgentSettings;
use fleet_breaker::model::Report;
use fleet_breaker::store::StoreExt;
use fleet_breaker::{AgentId, BreakerConfig, ManualClock, Outcome, RedisStore};
use redis::AsyncCommands;

#[path = "support/commandstats.rs"]
mod commandstats;
use commandstats::{RUN_INSIDE_SCRIPTS, client_commands, commandstats};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("REDIS_URL") else {
        println!("footprint measures Redis: set REDIS_URL, e.g.");
        println!("  REDIS_URL=redis://127.0.0.1:6379 cargo run --release --example footprint");
        return Ok(());
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let windowed = args.iter().any(|a| a == "--window");
    let count: usize = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or(Ok(10_000), |n| n.parse())?;
    let prefix = format!("fleet-breaker-footprint-{}", std::process::id());
    let clock = ManualClock::new(1_800_000_000_000);
    let mut builder = RedisStore::builder(&url).prefix(&prefix);
    if windowed {
        // Store time driven by hand: ten 1 s buckets in a moment.
        builder = builder.clock_override(Arc::new(clock.clone()));
    }
    let store = builder.build().await?;
    let config = if windowed {
        BreakerConfig::builder()
            .failure_threshold(1_000)
            .failure_rate_threshold(Some(0.9))
            .min_reporting_pods(3)
            .build()?
    } else {
        BreakerConfig::default()
    };
    let agents: Vec<AgentId> = (0..count)
        .map(|i| AgentId::new(&format!("agent-{i:05}")))
        .collect::<Result<_, _>>()?;
    let mut conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;

    // First use creates each agent; measure a steady pair on existing ones.
    for agent in &agents {
        store.acquire(&config, agent, "warm-up").await?;
    }
    let before = commandstats(&mut conn).await?;
    for agent in &agents {
        let applied = store.acquire(&config, agent, "p").await?;
        let fleet_breaker::model::Decision::Granted(grant) = applied.value else {
            return Err("a fresh circuit rejected a call".into());
        };
        let ticket = fleet_breaker::model::Ticket {
            permit_id: "p".into(),
            generation: grant.generation,
        };
        store
            .record(&config, agent, &ticket, Outcome::Success)
            .await?;
    }
    let after = commandstats(&mut conn).await?;
    if windowed {
        fill_windows(&store, &config, &agents, &clock).await?;
    }
    let pairs = count as f64;
    // What clients sent (FCALL), apart from what the scripts ran inside.
    let client_commands: u64 = client_commands(&before, &after).values().sum();
    let calls =
        |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    let inside_scripts: u64 = RUN_INSIDE_SCRIPTS.split(' ').map(calls).sum();

    let mut bytes = 0u64;
    for agent in &agents {
        let keys = [
            store.keys().state(agent),
            store.keys().probes(agent),
            store.keys().config(agent),
        ];
        for key in keys {
            let usage: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&key)
                .arg("SAMPLES")
                .arg(0)
                .query_async(&mut conn)
                .await?;
            bytes += usage.unwrap_or(0);
        }
    }
    let registry: u64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(store.keys().agents())
        .arg("SAMPLES")
        .arg(0)
        .query_async(&mut conn)
        .await?;

    if windowed {
        println!(
            "{count} agents, each with a full 10 s window (10 buckets), 3 reporting pods and 3 \
             settings of its own:"
        );
    }
    println!("{count} agents, one acquire+record pair each on a closed circuit:");
    println!(
        "  client commands per pair: {:.2} (FCALL; the scripts run {:.2} more inside Redis)",
        client_commands as f64 / pairs,
        inside_scripts as f64 / pairs
    );
    println!(
        "  memory per agent: {:.0} bytes of its own keys, {:.0} with its share of {}",
        bytes as f64 / pairs,
        (bytes + registry) as f64 / pairs,
        store.keys().agents()
    );
    println!(
        "{{\"agents\":{count},\"windowed\":{windowed},\"commands_per_pair\":{:.3},\"commands_inside_scripts_per_pair\":{:.3},\"bytes_per_agent\":{:.1},\"bytes_per_agent_with_registry\":{:.1}}}",
        client_commands as f64 / pairs,
        inside_scripts as f64 / pairs,
        bytes as f64 / pairs,
        (bytes + registry) as f64 / pairs
    );

    // SCAN, not KEYS: never block a shared Redis.
    let mut keys: Vec<String> = Vec::new();
    {
        let mut iter: redis::AsyncIter<String> = conn.scan_match(format!("{prefix}*")).await?;
        while let Some(key) = iter.next_item().await {
            keys.push(key?);
        }
    }
    for chunk in keys.chunks(500) {
        let _: () = conn.unlink(chunk).await?;
    }
    Ok(())
}

/// Settings of their own, then ten seconds of calls (one bucket a second):
/// three calls per bucket, one from each of three pods, one failing (the
/// failing pod turns, so all three report).
async fn fill_windows(
    store: &RedisStore,
    config: &BreakerConfig,
    agents: &[AgentId],
    clock: &ManualClock,
) -> Result<(), Box<dyn std::error::Error>> {
    let settings = AgentSettings {
        failure_rate_threshold: Some(0.9),
        minimum_calls: Some(50),
        backoff_jitter: Some(0.1),
        ..AgentSettings::default()
    };
    for agent in agents {
        store.configure(config, agent, &settings).await?;
    }
    for round in 0..10 {
        for agent in agents {
            for (i, pod) in ["pod-a", "pod-b", "pod-c"].into_iter().enumerate() {
                let applied = store.acquire(config, agent, "w").await?;
                let fleet_breaker::model::Decision::Granted(grant) = applied.value else {
                    return Err("a closed circuit rejected a call".into());
                };
                let ticket = fleet_breaker::model::Ticket {
                    permit_id: "w".into(),
                    generation: grant.generation,
                };
                let outcome = if i == round % 3 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                let report = Report {
                    outcome,
                    slow: false,
                    retry_after_ms: None,
                    pod,
                };
                store.report(config, agent, &ticket, report).await?;
            }
        }
        clock.advance(Duration::from_secs(1));
    }
    Ok(())
}
