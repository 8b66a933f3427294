//! Router overhead over a direct call, on a healthy agent.
//!
//! ```text
//! cargo bench --bench router                                  # embedded store
//! REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench router # also on Redis
//! ```
//!
//! - `direct_call`: the task function alone.
//! - `breaker_call`: `CircuitBreaker::call` (one acquire, one record).
//! - `route_task_first_agent_serves`: the router; the overhead is its
//!   median minus `direct_call`'s.
//!
//! On the embedded store every acquire and record takes the store's lock. On
//! Redis the breaker's local cache is warm (subscription up, both agents
//! cached closed), so a healthy agent costs no round trip: the figure that
//! matters for a fleet.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fleet_breaker::router::FailoverRouter;
use fleet_breaker::{AgentId, CircuitBreaker, RedisStore};

async fn call_agent(agent: AgentId, n: u64) -> Result<u64, std::io::Error> {
    Ok(black_box(n) + agent.as_str().len() as u64)
}

fn run(c: &mut Criterion, name: &str, rt: &tokio::runtime::Runtime, breaker: CircuitBreaker) {
    let agents = [
        AgentId::new("agent-1").unwrap(),
        AgentId::new("agent-2").unwrap(),
    ];
    let router = FailoverRouter::new(breaker.clone());
    let mut group = c.benchmark_group(name);
    group.bench_function("direct_call", |b| {
        b.to_async(rt)
            .iter(|| async { call_agent(agents[0].clone(), 1).await.unwrap() });
    });
    group.bench_function("breaker_call", |b| {
        b.to_async(rt).iter(|| async {
            breaker
                .call(&agents[0], call_agent(agents[0].clone(), 1))
                .await
                .unwrap()
        });
    });
    group.bench_function("route_task_first_agent_serves", |b| {
        b.to_async(rt).iter(|| async {
            router
                .route_task("bench", &agents, call_agent, 1)
                .await
                .unwrap()
                .value
        });
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    run(c, "memory", &rt, CircuitBreaker::in_memory());
    if let Ok(url) = std::env::var("REDIS_URL") {
        let prefix = format!("fleet-breaker-bench-{}", std::process::id());
        let store = rt
            .block_on(RedisStore::builder(url).prefix(prefix).build())
            .expect("REDIS_URL is set but Redis cannot be reached");
        // Built inside the runtime, so the watcher and flusher start.
        let _runtime = rt.enter();
        let breaker = CircuitBreaker::builder().store(store).build().unwrap();
        rt.block_on(async {
            assert!(
                breaker.cache_stats().is_some(),
                "a Redis breaker built in a runtime caches"
            );
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !breaker.is_watching() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the watcher did not subscribe"
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            for agent in ["agent-1", "agent-2"] {
                let agent = AgentId::new(agent).unwrap();
                breaker.acquire(&agent).await.unwrap().success().await;
            }
        });
        run(c, "redis", &rt, breaker);
    }
}

criterion_group!(router, benches);
criterion_main!(router);
