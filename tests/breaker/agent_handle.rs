//! `breaker.agent(&id)`: a handle that decides as `acquire` does, and the
//! embedded store's closed path, decided by the cache in front of it with
//! no store operation while every counter stays exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use fleet_breaker::model::Decision;
use fleet_breaker::store::{Applied, Feed, Op};
use fleet_breaker::{
    AgentId, BreakerConfig, BreakerStore, CircuitBreaker, CircuitState, ForceMode, ManualClock,
    MemoryStore, StoreError,
};

/// A memory store that counts the operations it is asked for.
#[derive(Debug, Clone)]
struct Counting {
    store: MemoryStore,
    ops: Arc<AtomicU64>,
}

#[async_trait]
impl BreakerStore for Counting {
    async fn apply(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        op: Op<'_>,
    ) -> Result<Option<Applied<Option<Decision>>>, StoreError> {
        self.ops.fetch_add(1, Ordering::SeqCst);
        self.store.apply(config, agent, op).await
    }

    async fn agents(&self) -> Result<Vec<AgentId>, StoreError> {
        self.store.agents().await
    }

    fn feed(&self) -> Feed {
        self.store.feed()
    }

    fn kind(&self) -> &'static str {
        "counting"
    }
}

pub(crate) fn counting() -> (CircuitBreaker, Arc<AtomicU64>, ManualClock) {
    let clock = ManualClock::default();
    let ops = Arc::new(AtomicU64::new(0));
    let store = Counting {
        store: MemoryStore::with_clock(Arc::new(clock.clone())),
        ops: Arc::clone(&ops),
    };
    let breaker = CircuitBreaker::builder().store(store).build().unwrap();
    (breaker, ops, clock)
}

fn agent(id: &str) -> AgentId {
    AgentId::new(id).unwrap()
}

#[tokio::test]
async fn the_embedded_store_decides_a_closed_circuit_with_no_store_operation() {
    let (breaker, ops, _clock) = counting();
    let a = agent("agent-1");
    breaker.acquire(&a).await.unwrap().success().await;
    let after_first = ops.load(Ordering::SeqCst);
    assert!(after_first >= 1, "the first decision goes to the store");
    let handle = breaker.agent(&a);
    for _ in 0..50 {
        breaker.acquire(&a).await.unwrap().success().await;
        handle.acquire().await.unwrap().success().await;
    }
    assert_eq!(
        ops.load(Ordering::SeqCst),
        after_first,
        "a closed, clean circuit is decided and counted in the cache alone"
    );
    // ...and the store's counters are exact at the next read.
    let metrics = breaker.metrics(&a).await.unwrap();
    assert_eq!(metrics.metrics.success_count, 101);
    assert!(metrics.metrics.last_success_time.is_some());
}

#[tokio::test]
async fn local_counts_reach_the_embedded_store_before_the_next_operation() {
    let (breaker, _ops, _clock) = counting();
    let a = agent("agent-1");
    let handle = breaker.agent(&a);
    for _ in 0..3 {
        handle.acquire().await.unwrap().success().await;
    }
    // A failure, then a success: the successes counted before it were
    // applied first, so the failure resets them as it always did.
    handle.acquire().await.unwrap().failure("boom").await;
    let s = breaker.snapshot(&a).await.unwrap();
    assert_eq!((s.failure_count, s.success_count), (1, 0));
    handle.acquire().await.unwrap().success().await;
    let s = breaker.snapshot(&a).await.unwrap();
    assert_eq!(
        (s.failure_count, s.success_count),
        (0, 1),
        "a success after a failure reaches the store at once"
    );
    // Local rejections count at once too.
    breaker.force(&a, ForceMode::Open, None).await.unwrap();
    for _ in 0..4 {
        let rejected = handle.acquire().await.unwrap_err();
        assert_eq!(rejected.state, CircuitState::ForcedOpen);
    }
    let s = breaker.snapshot(&a).await.unwrap();
    assert_eq!(s.total_rejections, 4);
}

#[tokio::test]
async fn a_handle_follows_the_circuit_through_open_half_open_and_closed() {
    let (breaker, _ops, clock) = counting();
    let a = agent("agent-1");
    let handle = breaker.agent(&a);
    assert_eq!(handle.agent(), &a);
    for _ in 0..5 {
        handle.acquire().await.unwrap().failure("down").await;
    }
    let rejected = handle.acquire().await.unwrap_err();
    assert_eq!(rejected.state, CircuitState::Open);
    assert_eq!(rejected.retry_after, Some(Duration::from_millis(1500)));
    clock.advance(Duration::from_millis(1500));
    let mut probes = Vec::new();
    for _ in 0..3 {
        let probe = handle.acquire().await.unwrap();
        assert!(probe.is_probe());
        probes.push(probe);
    }
    assert!(handle.acquire().await.is_err(), "three probes, no more");
    for probe in probes {
        probe.success().await;
    }
    assert_eq!(
        breaker.snapshot(&a).await.unwrap().state,
        CircuitState::Closed
    );
    let permit = handle.acquire().await.unwrap();
    assert!(!permit.is_probe());
    permit.success().await;
}

#[tokio::test]
async fn a_handle_made_before_the_agent_exists_works_once_it_does() {
    let breaker = CircuitBreaker::in_memory();
    let a = agent("agent-new");
    let handle = breaker.agent(&a);
    assert!(
        breaker.store().agents().await.unwrap().is_empty(),
        "making a handle creates no agent"
    );
    for _ in 0..3 {
        handle.acquire().await.unwrap().success().await;
    }
    assert_eq!(breaker.snapshot(&a).await.unwrap().success_count, 3);
}

#[test]
fn two_threads_on_one_handle_lose_no_count() {
    let breaker = CircuitBreaker::in_memory();
    let a = agent("agent-1");
    let handle = breaker.agent(&a);
    futures::executor::block_on(async {
        handle.acquire().await.unwrap().success().await;
    });
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                futures::executor::block_on(async {
                    for _ in 0..10_000 {
                        handle.acquire().await.unwrap().success().await;
                    }
                });
            });
        }
    });
    let s = futures::executor::block_on(breaker.snapshot(&a)).unwrap();
    assert_eq!(s.success_count, 20_001);
}

/// The coarse clock is read on every cached decision on Redis: a read must
/// write nothing shared (coarsetime's `Instant::now()` also stores the
/// reading in a global, a cache line every calling thread would write).
#[test]
fn a_coarse_clock_read_writes_no_global() {
    use fleet_breaker::{Clock, CoarseClock};
    coarsetime::Instant::update();
    let before = coarsetime::Instant::recent().as_ticks();
    let clock = CoarseClock::new();
    // Let the coarse time move on, so that a stored reading would show.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while coarsetime::Instant::now_without_cache_update().as_ticks() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the coarse clock did not move"
        );
        std::hint::spin_loop();
    }
    for _ in 0..3 {
        assert!(clock.now_ms() > 0);
    }
    assert_eq!(
        coarsetime::Instant::recent().as_ticks(),
        before,
        "a read stored its value in coarsetime's global"
    );
}

/// A call under a permit, through the breaker or a handle, is a future a
/// multi-threaded runtime can move between threads (both share one body).
#[test]
fn a_call_through_the_breaker_or_a_handle_is_send() {
    fn send<F: Send>(_: F) {}
    let breaker = fleet_breaker::CircuitBreaker::builder()
        .build()
        .expect("breaker");
    let id = fleet_breaker::AgentId::new("sent").expect("valid id");
    send(breaker.call(&id, async { Ok::<_, std::io::Error>(()) }));
    let handle = breaker.agent(&id);
    send(handle.call(async { Ok::<_, std::io::Error>(()) }));
}

/// `acquire`'s future decides when it is first polled, as an `async fn`
/// would, not when it is made: a future made before a force and awaited
/// after it sees the force, through the breaker and through a handle.
#[tokio::test]
async fn an_acquire_decides_when_polled_not_when_made() {
    let (breaker, _ops, _clock) = counting();
    let a = agent("agent-1");
    breaker.acquire(&a).await.unwrap().success().await;
    let handle = breaker.agent(&a);
    let by_breaker = breaker.acquire(&a);
    let by_handle = handle.acquire();
    breaker.force(&a, ForceMode::Open, None).await.unwrap();
    assert_eq!(
        by_breaker.await.unwrap_err().state,
        CircuitState::ForcedOpen
    );
    assert_eq!(by_handle.await.unwrap_err().state, CircuitState::ForcedOpen);
    breaker.force(&a, ForceMode::Auto, None).await.unwrap();
    let by_breaker = breaker.acquire(&a);
    let by_handle = handle.acquire();
    breaker.force(&a, ForceMode::Closed, None).await.unwrap();
    assert_eq!(
        by_breaker.await.unwrap().generation(),
        by_handle.await.unwrap().generation()
    );
}
