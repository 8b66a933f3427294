//! The simulated agents, the pods that call them, the agents that die, and
//! the pods' receipts of transitions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fleet_breaker::{AgentId, CircuitBreaker, CircuitState};
use tokio_stream::StreamExt;

use crate::FAILURE_THRESHOLD;
use crate::options::Options;

pub(crate) fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

/// A small xorshift generator: which agent a pod calls, which agent dies.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// Receipts of transitions by the pods' `subscribe()` streams.
#[derive(Debug, Default)]
pub(crate) struct Receipts {
    /// Ms from `at_ms` to each receipt.
    pub(crate) delays: Vec<f64>,
    /// Per transition (agent, epoch, generation): receipts and the longest delay.
    pub(crate) each: HashMap<(String, u64, u64), (usize, f64)>,
}

/// The simulated agents and what the pods did to them.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) agents: Vec<AgentId>,
    /// Per agent: dead until this wall-clock ms.
    pub(crate) dead_until: Vec<AtomicU64>,
    pub(crate) stop: AtomicBool,
    /// Counting receipts: only transitions inside the measured window.
    pub(crate) counting: AtomicBool,
    /// Calls made, failed (to a dead agent), refused, flaps.
    pub(crate) counts: [AtomicU64; 4],
    pub(crate) receipts: Mutex<Receipts>,
}

pub(crate) const CALLS: usize = 0;
pub(crate) const FAILED: usize = 1;
pub(crate) const REFUSED: usize = 2;
pub(crate) const FLAPS: usize = 3;

impl World {
    fn count(&self, which: usize) {
        self.counts[which].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn counted(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed))
    }

    async fn call(&self, breaker: &CircuitBreaker, agent: usize) {
        let Ok(permit) = breaker.acquire(&self.agents[agent]).await else {
            return self.count(REFUSED);
        };
        self.count(CALLS);
        if (wall_ms() as u64) < self.dead_until[agent].load(Ordering::Relaxed) {
            self.count(FAILED);
            permit.failure("agent is dead").await;
        } else {
            permit.success().await;
        }
    }
}

/// Pod `index`: `calls_per_sec` calls a second, one at a time, each to a
/// random agent of its spread.
pub(crate) async fn pod(index: usize, breaker: CircuitBreaker, world: Arc<World>, o: Options) {
    let first = index * o.agents / o.pods;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1));
    let tick = Duration::from_millis(10);
    tokio::time::sleep(tick.mul_f64(index as f64 / o.pods as f64)).await;
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (start, mut made) = (Instant::now(), 0u64);
    while !world.stop.load(Ordering::Acquire) {
        ticks.tick().await;
        let due = (start.elapsed().as_secs_f64() * o.calls_per_sec as f64) as u64;
        // Catch up with the schedule, but never by more than 50 ms of calls.
        let burst = due.saturating_sub(made).min(o.calls_per_sec / 20 + 1);
        for _ in 0..burst {
            let agent = (first + rng.below(o.spread)) % o.agents;
            world.call(&breaker, agent).await;
            made += 1;
        }
    }
}

/// `flaps_per_sec` times a second a random agent dies: `tripper` (a
/// breaker of its own, without a cache) makes the failing calls that open
/// its circuit at once; after `dead_ms` the agent recovers and `tripper`
/// probes it until it is closed. The pods' own calls to it fail meanwhile.
/// So each flap is three transitions (open, half-open, closed) at a rate
/// that does not depend on the pods' call rate.
pub(crate) async fn flapper(world: Arc<World>, tripper: CircuitBreaker, o: Options) {
    if o.flaps_per_sec == 0 {
        return;
    }
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / o.flaps_per_sec as u32);
    while !world.stop.load(Ordering::Acquire) {
        ticks.tick().await;
        let agent = rng.below(o.agents);
        world.count(FLAPS);
        tokio::spawn(flap(Arc::clone(&world), tripper.clone(), agent, o.dead_ms));
    }
}

async fn flap(world: Arc<World>, tripper: CircuitBreaker, agent: usize, dead_ms: u64) {
    let id = &world.agents[agent];
    world.dead_until[agent].store(u64::MAX, Ordering::Relaxed);
    for _ in 0..FAILURE_THRESHOLD {
        if let Ok(permit) = tripper.acquire(id).await {
            permit.failure("agent is dead").await;
        }
    }
    tokio::time::sleep(Duration::from_millis(dead_ms)).await;
    world.dead_until[agent].store(0, Ordering::Relaxed);
    // Bounded: the backoff is 300 ms to 5 s, the probes a few round trips.
    for _ in 0..200 {
        match tripper.snapshot(id).await {
            Ok(s) if s.state == CircuitState::Closed => return,
            Ok(_) => {}
            Err(_) => return,
        }
        if let Ok(permit) = tripper.acquire(id).await {
            permit.success().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn listen(breaker: &CircuitBreaker, world: Arc<World>) -> tokio::task::JoinHandle<()> {
    let mut stream = Box::pin(breaker.subscribe());
    tokio::spawn(async move {
        while let Some(t) = stream.next().await {
            let delay = wall_ms() - t.at_ms as f64;
            if !world.counting.load(Ordering::Acquire) {
                continue;
            }
            let mut r = world
                .receipts
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            r.delays.push(delay);
            let entry = r
                .each
                .entry((t.agent_id.to_string(), t.epoch, t.generation))
                .or_insert((0, 0.0));
            *entry = (entry.0 + 1, entry.1.max(delay));
        }
    })
}
