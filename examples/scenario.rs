//! Replays the original specification's "Agent-1 fails" timeline.
//!
//! Five failures open the circuit with a 1.5 s backoff; calls are rejected
//! while it is open; after 1.5 s three probe calls succeed and the circuit
//! closes. One line per step: time offset, call result, state.
//!
//! ```text
//! cargo run --example scenario                                # embedded store
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example scenario   # a fleet's Redis
//! ```

use std::time::{Duration, Instant};

use fleet_breaker::{AgentId, CallError, CircuitBreaker, CircuitState, MemoryStore, RedisStore};

#[derive(Debug)]
struct AgentDown;

impl std::fmt::Display for AgentDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection refused")
    }
}

struct Timeline {
    breaker: CircuitBreaker,
    agent: AgentId,
    start: Instant,
    state: CircuitState,
}

impl Timeline {
    async fn call(&mut self, agent_works: bool) {
        let result = self
            .breaker
            .call(&self.agent, async {
                if agent_works {
                    Ok("ok")
                } else {
                    Err(AgentDown)
                }
            })
            .await;
        let snapshot = self.breaker.snapshot(&self.agent).await.ok();
        let what = match &result {
            Ok(_) => "success".to_owned(),
            Err(CallError::Inner(e)) => format!(
                "FAILED ({e}) {}/{}",
                snapshot.as_ref().map_or(0, |s| s.failure_count),
                self.breaker.config().failure_threshold
            ),
            Err(CallError::Rejected(r)) => format!(
                "REJECTED without a call, retry after {:.3}s",
                r.retry_after.unwrap_or_default().as_secs_f64()
            ),
        };
        let state = snapshot.as_ref().map_or(self.state, |s| s.state);
        println!(
            "t=+{:>6.3}s  request -> {}  {:<46} state={}",
            self.start.elapsed().as_secs_f64(),
            self.agent,
            what,
            state
        );
        if state != self.state {
            let backoff = snapshot.map_or(0.0, |s| s.backoff_ms as f64 / 1000.0);
            println!(
                "            TRANSITION {} -> {} (backoff {backoff}s)",
                self.state, state
            );
            self.state = state;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let builder = CircuitBreaker::builder();
    let builder = match std::env::var("REDIS_URL") {
        Ok(url) => {
            let store = RedisStore::builder(&url)
                .prefix(format!("fleet-breaker-scenario-{}", std::process::id()))
                .build()
                .await?;
            println!("store: Redis at {:?}", store);
            builder.store(store)
        }
        Err(_) => {
            println!("store: embedded (set REDIS_URL to run against Redis)");
            builder.store(MemoryStore::new())
        }
    };
    let breaker = builder.build()?;
    let mut timeline = Timeline {
        breaker,
        agent: AgentId::new("agent-1")?,
        start: Instant::now(),
        state: CircuitState::Closed,
    };
    let step = Duration::from_millis(200);

    println!("-- agent-1 is down");
    for _ in 0..5 {
        timeline.call(false).await;
        tokio::time::sleep(step).await;
    }
    println!("-- calls while the circuit is open are rejected at once");
    for _ in 0..2 {
        timeline.call(false).await;
        tokio::time::sleep(step).await;
    }
    println!("-- agent-1 recovers; waiting out the rest of the 1.5 s backoff");
    let until_half_open = Duration::from_millis(1500).saturating_sub(2 * step);
    tokio::time::sleep(until_half_open + Duration::from_millis(50)).await;
    for _ in 0..3 {
        timeline.call(true).await;
        tokio::time::sleep(step).await;
    }
    println!("-- back to normal");
    timeline.call(true).await;
    let metrics = timeline.breaker.metrics(&timeline.agent).await?;
    println!("{}", serde_json::to_string(&metrics)?);
    Ok(())
}
