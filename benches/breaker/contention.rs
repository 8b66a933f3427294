//! Two threads calling the same closed agent at once, against one thread:
//! whether the hot path writes a shared cache line per call.
//!
//! Each sample runs `iters` admitted calls (acquire + success) on each of
//! `threads` OS threads started together, and reports the wall time divided
//! by `threads`: the aggregate cost of one call. One thread's figure over
//! two threads' is the aggregate speed-up (2.0 would be perfect scaling;
//! the goal is at least 1.7).
//!
//! The calls are cached decisions that complete on their first poll, so each
//! thread drives its loop with `futures::executor::block_on`: no runtime
//! worker is involved, the tokio runtime only keeps the cache trusted.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use fleet_breaker::breaker::AgentHandle;
use fleet_breaker::{AgentId, CircuitBreaker};

/// What each thread calls through.
#[derive(Clone, Copy)]
pub(crate) enum Path {
    /// `breaker.acquire(&id)` + `Permit::success`.
    Acquire,
    /// `handle.acquire()` + `AgentPermit::success`.
    Handle,
    /// No breaker: each thread runs a few dozen ns of arithmetic on its
    /// own registers. The control: two threads reach 2x one thread's
    /// throughput only if the machine has two cores free; on a machine
    /// busy with other work, neither this nor a breaker path can.
    Control,
}

/// `iters` calls on each of `threads` threads at once; wall time / threads.
/// Each thread enters `rt` (a call the cache cannot decide, say while the
/// runtime's workers are starved of CPU and the subscription's heartbeat
/// is late, then reaches Redis on it).
pub(crate) fn run(
    rt: &tokio::runtime::Handle,
    breaker: &CircuitBreaker,
    agent: &AgentId,
    path: Path,
    threads: u32,
    iters: u64,
) -> Duration {
    let handle = breaker.agent(agent);
    let barrier = Barrier::new(threads as usize + 1);
    let elapsed = std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let _runtime = rt.enter();
                barrier.wait();
                futures::executor::block_on(calls(breaker, agent, &handle, path, iters));
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Scope end joins every thread.
        start
    })
    .elapsed();
    elapsed / threads
}

async fn calls(
    breaker: &CircuitBreaker,
    agent: &AgentId,
    handle: &AgentHandle,
    path: Path,
    iters: u64,
) {
    for _ in 0..iters {
        match path {
            Path::Acquire => {
                let permit = breaker
                    .acquire(black_box(agent))
                    .await
                    .expect("the circuit is closed");
                permit.success().await;
            }
            Path::Handle => {
                let permit = black_box(handle)
                    .acquire()
                    .await
                    .expect("the circuit is closed");
                permit.success().await;
            }
            Path::Control => {
                let mut x = black_box(0x9e37_79b9_7f4a_7c15_u64);
                for _ in 0..16 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x = black_box(x);
                }
                black_box(x);
            }
        }
    }
}
