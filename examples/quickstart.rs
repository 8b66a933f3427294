//! The original specification's Basic Usage, in Rust.
//!
//! Three agents in priority order: agent-1 is dead, agent-2 healthy,
//! agent-3 a spare. Twenty tasks are routed; the first five find agent-1
//! failing and fall back to agent-2, then agent-1's circuit is open and it
//! is skipped without a call. One line per task, then the health JSON on
//! one line (`open_circuits` 1, `healthy_agents` 2, `total_agents` 3).
//!
//! ```text
//! cargo run --example quickstart                                   # embedded store
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example quickstart  # shared through Redis
//! ```

use fleet_breaker::router::{AgentReport, FailoverRouter, RouteError};
use fleet_breaker::{AgentId, CircuitBreaker, RedisStore};

/// The agents, in priority order.
const AGENTS: [&str; 3] = ["agent-1", "agent-2", "agent-3"];

/// Keeps the demo's keys apart from a real fleet's.
const REDIS_PREFIX: &str = "fleet-breaker-quickstart";

/// What a task carries.
#[derive(Debug, Clone)]
struct Task {
    number: u32,
}

#[derive(Debug)]
struct AgentError(&'static str);

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Your actual agent call. Here agent-1 is down; the others answer.
async fn call_agent(agent: AgentId, task: Task) -> Result<String, AgentError> {
    match agent.as_str() {
        "agent-1" => Err(AgentError("connection refused")),
        _ => Ok(format!("result {} from {agent}", task.number)),
    }
}

async fn breaker() -> Result<CircuitBreaker, Box<dyn std::error::Error>> {
    match std::env::var("REDIS_URL") {
        Ok(url) => {
            let store = RedisStore::builder(url)
                .prefix(REDIS_PREFIX)
                .build()
                .await?;
            println!("store: Redis from REDIS_URL, key prefix {REDIS_PREFIX}");
            Ok(CircuitBreaker::builder().store(store).build()?)
        }
        Err(_) => {
            println!("store: embedded, in memory (set REDIS_URL to share it through Redis)");
            Ok(CircuitBreaker::in_memory())
        }
    }
}

/// `agent-1 failed: connection refused`, `agent-1 skipped: open, retry after 1.4s`.
fn passed_over(history: &[AgentReport]) -> String {
    if history.is_empty() {
        return String::new();
    }
    let notes: Vec<String> = history.iter().map(ToString::to_string).collect();
    format!("  [{}]", notes.join("; "))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let router = FailoverRouter::builder(breaker().await?)
        .max_retries(3)
        .build()?;
    // A fresh start: on Redis, an earlier run may have left agent-1 open.
    for agent in AGENTS {
        let _unknown_on_a_first_run = router.reset_agent(agent).await;
    }

    for number in 1..=20 {
        let task_id = format!("task-{number:02}");
        let task = Task { number };
        match router.route_task(&task_id, AGENTS, call_agent, task).await {
            Ok(routed) => println!(
                "{task_id} -> {} ({}){}",
                routed.agent,
                routed.value,
                passed_over(&routed.history)
            ),
            Err(RouteError::AllAgentsFailed(failed)) => println!("{task_id} -> {failed}"),
            Err(other) => println!("{task_id} -> error: {other}"),
        }
    }

    let failures = router.recent_failures(10).await?;
    println!("recent failures: {}", failures.len());
    let health = router.health_status().await?;
    println!("{}", serde_json::to_string(&health)?);
    Ok(())
}
