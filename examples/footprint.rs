//! Redis cost of the breaker without the local cache: commands per
//! acquire+record pair on a closed circuit, and memory per agent.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release --example footprint [AGENTS]
//! ```
//!
//! Creates AGENTS agents (default 10,000) under a fresh prefix, reads
//! `INFO commandstats` before and after one acquire+record pair per agent,
//! sums `MEMORY USAGE` of every agent's keys, prints one JSON line, and
//! deletes its keys.

use fleet_breaker::store::StoreExt;
use fleet_breaker::{AgentId, BreakerConfig, Outcome, RedisStore};
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
    let count: usize = std::env::args().nth(1).map_or(Ok(10_000), |n| n.parse())?;
    let prefix = format!("fleet-breaker-footprint-{}", std::process::id());
    let store = RedisStore::builder(&url).prefix(&prefix).build().await?;
    let config = BreakerConfig::default();
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
    let pairs = count as f64;
    // What clients sent (EVALSHA), apart from what the scripts ran inside.
    let client_commands: u64 = client_commands(&before, &after).values().sum();
    let calls =
        |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    let inside_scripts: u64 = RUN_INSIDE_SCRIPTS.split(' ').map(calls).sum();

    let mut bytes = 0u64;
    for agent in &agents {
        for key in [store.keys().state(agent), store.keys().probes(agent)] {
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

    println!("{count} agents, one acquire+record pair each on a closed circuit:");
    println!(
        "  client commands per pair: {:.2} (EVALSHA; the scripts run {:.2} more inside Redis)",
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
        "{{\"agents\":{count},\"commands_per_pair\":{:.3},\"commands_inside_scripts_per_pair\":{:.3},\"bytes_per_agent\":{:.1},\"bytes_per_agent_with_registry\":{:.1}}}",
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
