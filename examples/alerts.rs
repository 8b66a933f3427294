//! Alerting on circuit transitions, from the library.
//!
//! [`CircuitBreaker::subscribe`] is a stream of every transition: an alert
//! hook is a task that reads it. Here it prints an alert when agent-1's
//! circuit opens and a resolution when it closes again; with the default
//! feature `service`, [`Webhooks::spawn_in_process`] also POSTs every transition
//! to a webhook (a receiver in this process that prints what it gets).
//!
//! The agent fails three times (the circuit opens), the backoff of one
//! and a half passes, two probes succeed (it closes), and the example ends.
//!
//! ```text
//! cargo run --example alerts
//! ```
//!
//! On a fleet sharing Redis, `fleet-breaker serve --webhook URL` delivers
//! each transition once fleet-wide ([`Webhooks::spawn_redis`]).
//!
//! [`Webhooks::spawn_in_process`]: fleet_breaker::alerts::Webhooks::spawn_in_process
//! [`Webhooks::spawn_redis`]: fleet_breaker::alerts::Webhooks::spawn_redis

use std::time::Duration;

use fleet_breaker::{
    AgentId, BreakerConfig, CircuitBreaker, CircuitState, MemoryStore, Transition,
};
use futures::StreamExt;
use tokio::sync::mpsc;

/// The bound on the whole run, in case something never happens.
const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let breaker = CircuitBreaker::builder()
        .store(MemoryStore::new())
        .config(
            BreakerConfig::builder()
                .failure_threshold(3)
                .half_open_max_calls(2)
                .base_backoff(Duration::from_secs(1))
                .build()?,
        )
        .build()?;

    // The alert hook: subscribe before anything happens, react in a task.
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<Transition>();
    let mut transitions = Box::pin(breaker.subscribe());
    tokio::spawn(async move {
        while let Some(t) = transitions.next().await {
            match t.to {
                CircuitState::Open => println!(
                    "ALERT    {} circuit OPEN ({}), calls rejected for {:.1}s",
                    t.agent_id, t.reason, t.backoff_seconds
                ),
                CircuitState::Closed => {
                    println!("RESOLVED {} circuit closed ({})", t.agent_id, t.reason);
                }
                other => println!("info     {} circuit {} ({})", t.agent_id, other, t.reason),
            }
            if seen_tx.send(t).is_err() {
                break;
            }
        }
    });
    #[cfg(feature = "service")]
    let webhooks = webhook::start(&breaker).await?;

    let agent = AgentId::new("agent-1")?;
    tokio::time::timeout(DEADLINE, async {
        for n in 1..=3 {
            let permit = breaker.acquire(&agent).await?;
            println!("call {n}  {agent} fails");
            permit.failure("connection refused").await;
        }
        wait_for(&mut seen, CircuitState::Open).await;
        let wait = match breaker.acquire(&agent).await {
            Err(rejected) => {
                println!("call 4  {rejected}");
                rejected.retry_after.unwrap_or_default()
            }
            Ok(permit) => {
                permit.success().await;
                Duration::ZERO
            }
        };

        // Past the backoff, the next calls are probes.
        tokio::time::sleep(wait + Duration::from_millis(50)).await;
        for n in 5..=6 {
            let permit = breaker.acquire(&agent).await?;
            println!("call {n}  {agent} answers (probe)");
            permit.success().await;
        }
        wait_for(&mut seen, CircuitState::Closed).await;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
    .await
    .map_err(|_| "the circuit did not open and close within 10 s")??;

    #[cfg(feature = "service")]
    webhooks.stop(3).await;
    Ok(())
}

/// Waits until the alert hook has seen a transition to `state`.
async fn wait_for(seen: &mut mpsc::UnboundedReceiver<Transition>, state: CircuitState) {
    while let Some(t) = seen.recv().await {
        if t.to == state {
            return;
        }
    }
}

/// The webhook side: a receiver on a loopback port, and the breaker's
/// transitions POSTed to it.
#[cfg(feature = "service")]
mod webhook {
    use std::time::Duration;

    use axum::Router;
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use fleet_breaker::CircuitBreaker;
    use fleet_breaker::alerts::{DELIVERY_HEADER, WebhookHandle, Webhooks};

    pub(crate) struct Running {
        handle: WebhookHandle,
    }

    pub(crate) async fn start(
        breaker: &CircuitBreaker,
    ) -> Result<Running, Box<dyn std::error::Error>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let app = Router::new().route("/hook", post(receive));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let handle = Webhooks::builder([url])
            .retry_backoff(Duration::from_millis(100), Duration::from_secs(1))
            .build()?
            .spawn_in_process(breaker);
        Ok(Running { handle })
    }

    async fn receive(headers: HeaderMap, body: Bytes) -> StatusCode {
        let id = headers
            .get(DELIVERY_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?");
        println!("webhook  {id}: {}", String::from_utf8_lossy(&body));
        StatusCode::NO_CONTENT
    }

    impl Running {
        /// Waits (a little) for `expected` deliveries, then stops.
        pub(crate) async fn stop(self, expected: u64) {
            for _ in 0..50 {
                if self.handle.stats()[0].delivered >= expected {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let stats = &self.handle.stats()[0];
            println!(
                "webhook  {} delivered, {} failed, {} dead-lettered",
                stats.delivered, stats.failed, stats.dead_lettered
            );
            self.handle.shutdown().await;
        }
    }
}
