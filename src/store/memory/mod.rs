//! [`MemoryStore`]: the embedded store, one process, same semantics as Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::feed::FeedStats;
use super::{
    Applied, BreakerStore, Census, Feed, FeedHandle, FeedSink, Op, RoutingJournal, StoreError,
};
use crate::agent_id::AgentId;
use crate::clock::{Clock, SystemClock};
use crate::config::{BreakerConfig, duration_ms};
use crate::model::{self, Batch, CircuitState, Decision, Outcome, Snapshot, Ticket, Transition};

mod expiry;
mod journal;

/// How many transitions a slow [`MemoryStore::transitions`] subscriber may
/// fall behind before it misses some.
const TRANSITION_BUFFER: usize = 1024;

/// The embedded store: agent snapshots in a map, behind a mutex, with an
/// injected [`Clock`].
///
/// ## Behavior
///
/// - Each operation applies one [`crate::model`] function under the lock, so
///   concurrent tasks see one order, as pods do through Redis.
/// - No `.await` happens while the lock is held; the lock is never poisoned in
///   practice (the model does not panic), and a poisoned lock is recovered.
/// - Transitions are sent on a broadcast channel ([`MemoryStore::transitions`]).
/// - A force with a TTL ends on time, with its transition, even if no
///   operation touches the agent: a store on the system clock
///   ([`MemoryStore::new`]) runs a timer task (on the tokio runtime of the
///   operation that set the force; outside a runtime the force ends at the
///   next operation, lazily). A store on an injected clock
///   ([`MemoryStore::with_clock`]) ends forces lazily unless
///   [`MemoryStore::set_force_timer`] turns the timer on, since a clock
///   moved by hand does not move with the timer's tokio time.
/// - Clones share the same state.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    agents: Mutex<HashMap<AgentId, Snapshot>>,
    clock: Arc<dyn Clock>,
    transitions: broadcast::Sender<Transition>,
    /// The sinks of started feeds (a cache in front of this store), fed as
    /// transitions and failure counts change.
    sinks: Mutex<Vec<Weak<dyn FeedSink>>>,
    /// Whether a feed ever took a sink: until then an operation does not
    /// take the sinks' lock (the breaker keeps no cache in front of this
    /// store, so on its path this stays `false`).
    fed: AtomicBool,
    /// Recent routing failures and the routing-decision counter.
    journal: journal::MemoryJournal,
    /// Whether forces with a TTL end on a timer (else lazily).
    force_timer: AtomicBool,
    /// Whether `clock` is the system's ([`MemoryStore::new`]): a cache in
    /// front may then time its local successes with a coarse clock.
    system_clock: bool,
    /// The forces with a TTL, and the timer task that ends them.
    expiries: expiry::Expiries,
}

impl expiry::Expire for Inner {
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn expiries(&self) -> &expiry::Expiries {
        &self.expiries
    }

    fn expire(&self, agent: &AgentId, config: &BreakerConfig) {
        let now_ms = self.clock.now_ms();
        let transition = {
            let mut agents = self.agents.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(snapshot) = agents.get_mut(agent) else {
                return;
            };
            model::refresh(snapshot, config, agent, now_ms)
        };
        if let Some(transition) = transition {
            self.send(&transition);
        }
    }
}

impl Inner {
    /// Sends a transition to subscribers and sinks, after the lock is
    /// released.
    fn send(&self, transition: &Transition) {
        for sink in self.sinks() {
            sink.transition(transition);
        }
        // An error only means nobody is listening.
        let _ = self.transitions.send(transition.clone());
    }

    /// The sinks still alive (the others are dropped from the list).
    fn sinks(&self) -> Vec<Arc<dyn FeedSink>> {
        if !self.fed.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut sinks = self.sinks.lock().unwrap_or_else(PoisonError::into_inner);
        if sinks.is_empty() {
            return Vec::new();
        }
        sinks.retain(|sink| sink.strong_count() > 0);
        sinks.iter().filter_map(Weak::upgrade).collect()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store on the system clock, whose forces end on time (see
    /// the behaviour list).
    #[must_use]
    pub fn new() -> Self {
        let mut store = Self::with_clock(Arc::new(SystemClock));
        store.set_force_timer(true);
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            inner.system_clock = true;
        }
        store
    }

    /// An empty store reading `clock`; forces end lazily unless
    /// [`set_force_timer`](Self::set_force_timer) turns the timer on.
    #[must_use]
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        let (transitions, _) = broadcast::channel(TRANSITION_BUFFER);
        Self {
            inner: Arc::new(Inner {
                agents: Mutex::new(HashMap::new()),
                clock,
                transitions,
                sinks: Mutex::new(Vec::new()),
                fed: AtomicBool::new(false),
                journal: journal::MemoryJournal::default(),
                force_timer: AtomicBool::new(false),
                system_clock: false,
                expiries: expiry::Expiries::default(),
            }),
        }
    }

    /// Whether a force with a TTL ends on a timer, at its expiry, rather
    /// than at the next operation on the agent. The timer sleeps on tokio
    /// time and judges expiry by the store's clock: turn it on with an
    /// injected clock only if that clock moves with tokio time. Applies to
    /// forces set from now on.
    pub fn set_force_timer(&self, on: bool) {
        self.inner.force_timer.store(on, Ordering::Relaxed);
    }

    /// Notes the expiry of a force the operation left in place, for the
    /// timer. Costs one check for an agent that is not forced.
    fn note_expiry(&self, config: &BreakerConfig, agent: &AgentId, snapshot: &Snapshot) {
        let forced = matches!(
            snapshot.state,
            CircuitState::ForcedOpen | CircuitState::ForcedClosed
        );
        let Some(until_ms) = snapshot.forced_until_ms.filter(|_| forced) else {
            return;
        };
        if !self.inner.force_timer.load(Ordering::Relaxed) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let wake = self.inner.expiries.wake();
        self.inner
            .expiries
            .note(agent, until_ms, config, || expiry::spawn(weak, wake));
    }

    /// Every transition from now on, in the order they happen.
    #[must_use]
    pub fn transitions(&self) -> broadcast::Receiver<Transition> {
        self.inner.transitions.subscribe()
    }

    /// Puts `snapshot` in place of what the store holds for `agent` (used to
    /// seed a local fallback from the last snapshot seen in Redis).
    pub fn seed(&self, agent: &AgentId, snapshot: Snapshot) {
        self.lock().insert(agent.clone(), snapshot);
    }

    /// Whether the store holds `agent`.
    #[must_use]
    pub fn contains(&self, agent: &AgentId) -> bool {
        self.lock().contains_key(agent)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<AgentId, Snapshot>> {
        self.inner
            .agents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// [`StoreExt::acquire`](super::StoreExt::acquire) without the `async`:
    /// the memory store never waits and never fails.
    pub fn acquire_sync(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        permit_id: &str,
    ) -> Applied<Decision> {
        self.apply_or_create(config, agent, |s, now| {
            let step = model::acquire(s, config, agent, now, permit_id);
            (step.decision, step.transition)
        })
    }

    /// [`StoreExt::record`](super::StoreExt::record) without the `async`.
    pub fn record_sync(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        ticket: &Ticket,
        outcome: Outcome,
    ) -> Applied<()> {
        self.apply_or_create(config, agent, |s, now| {
            let report = model::Report::of(outcome);
            ((), model::record(s, config, agent, now, ticket, &report))
        })
    }

    /// Applies `op` to the agent's snapshot under the lock, creating the
    /// agent on first use.
    fn apply_or_create<T>(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        op: impl FnOnce(&mut Snapshot, u64) -> (T, Option<Transition>),
    ) -> Applied<T> {
        let counted = self.take_counts(agent);
        let now_ms = self.inner.clock.now_ms();
        let (folded, applied) = {
            let mut agents = self.lock();
            let snapshot = agents
                .entry(agent.clone())
                .or_insert_with(|| Snapshot::fresh(config));
            let folded = fold(snapshot, config, agent, now_ms, counted.as_ref());
            (folded, run(snapshot, now_ms, op))
        };
        self.note_expiry(config, agent, &applied.snapshot);
        self.publish(agent, folded, applied)
    }

    /// Applies `op` to the agent's snapshot under the lock; `None`, and
    /// nothing written, for an unknown agent.
    fn apply_existing<T>(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        op: impl FnOnce(&mut Snapshot, u64) -> (T, Option<Transition>),
    ) -> Option<Applied<T>> {
        let counted = self.take_counts(agent);
        let now_ms = self.inner.clock.now_ms();
        let (folded, applied) = {
            let mut agents = self.lock();
            let snapshot = agents.get_mut(agent)?;
            let folded = fold(snapshot, config, agent, now_ms, counted.as_ref());
            (folded, run(snapshot, now_ms, op))
        };
        self.note_expiry(config, agent, &applied.snapshot);
        Some(self.publish(agent, folded, applied))
    }

    /// The outcomes a cache in front of this store counted locally for
    /// `agent` (closed-circuit successes, local rejections), taken before
    /// the lock: applied first, so each operation and read sees them.
    fn take_counts(&self, agent: &AgentId) -> Option<Batch> {
        let mut taken: Option<Batch> = None;
        for sink in self.inner.sinks() {
            let Some(batch) = sink.take_counts(agent) else {
                continue;
            };
            taken = Some(match taken {
                None => batch,
                // Two breakers in front of one store: each counted in the
                // generation it saw; a batch of an older one adds only its
                // rejections and its time, as its own flush would.
                Some(mut sum) if sum.generation == batch.generation => {
                    sum.successes += batch.successes;
                    sum.rejections += batch.rejections;
                    sum.last_success_ms = sum.last_success_ms.max(batch.last_success_ms);
                    sum
                }
                Some(sum) => {
                    let (mut newer, older) = if sum.generation > batch.generation {
                        (sum, batch)
                    } else {
                        (batch, sum)
                    };
                    newer.rejections += older.rejections;
                    newer.last_success_ms = newer.last_success_ms.max(older.last_success_ms);
                    newer
                }
            });
        }
        taken
    }

    /// Sends the transitions (of the folded counts, then of the operation),
    /// after the lock is released; tells the sinks of a failure count that
    /// changed without one.
    fn publish<T>(
        &self,
        agent: &AgentId,
        folded: Option<Transition>,
        applied: Applied<T>,
    ) -> Applied<T> {
        if let Some(transition) = &folded {
            self.inner.send(transition);
        }
        match &applied.transition {
            Some(transition) => self.inner.send(transition),
            None => {
                let snapshot = &applied.snapshot;
                for sink in self.inner.sinks() {
                    sink.failure_count(agent, snapshot.generation, snapshot.failure_count);
                }
            }
        }
        applied
    }
}

/// Applies locally counted outcomes as the flush they stand for.
fn fold(
    snapshot: &mut Snapshot,
    config: &BreakerConfig,
    agent: &AgentId,
    now_ms: u64,
    counted: Option<&Batch>,
) -> Option<Transition> {
    model::flush(snapshot, config, agent, now_ms, counted?)
}

fn run<T>(
    snapshot: &mut Snapshot,
    now_ms: u64,
    op: impl FnOnce(&mut Snapshot, u64) -> (T, Option<Transition>),
) -> Applied<T> {
    let (value, transition) = op(snapshot, now_ms);
    Applied {
        value,
        snapshot: snapshot.clone(),
        transition,
        now_ms,
    }
}

#[async_trait]
impl BreakerStore for MemoryStore {
    async fn apply(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        op: Op<'_>,
    ) -> Result<Option<Applied<Option<Decision>>>, StoreError> {
        let some = |(), transition| (None, transition);
        Ok(match op {
            Op::Acquire { permit_id } => Some(self.apply_or_create(config, agent, |s, now| {
                let step = model::acquire(s, config, agent, now, permit_id);
                (Some(step.decision), step.transition)
            })),
            Op::Record { ticket, report } => Some(self.apply_or_create(config, agent, |s, now| {
                some((), model::record(s, config, agent, now, ticket, &report))
            })),
            Op::Configure(settings) => Some({
                settings
                    .check_ranges()
                    .map_err(|e| StoreError::InvalidSettings(e.to_string()))?;
                self.apply_or_create(config, agent, |s, now| {
                    model::configure(s, *settings);
                    some((), model::refresh(s, config, agent, now))
                })
            }),
            Op::Flush(batch) => self.apply_existing(config, agent, |s, now| {
                some((), model::flush(s, config, agent, now, batch))
            }),
            Op::Reset => self.apply_existing(config, agent, |s, now| {
                some((), Some(model::reset(s, config, agent, now)))
            }),
            Op::Force { mode, ttl } => {
                let ttl_ms = ttl.map(duration_ms);
                self.apply_existing(config, agent, |s, now| {
                    some((), Some(model::force(s, config, agent, now, mode, ttl_ms)))
                })
            }
            Op::Snapshot => self.apply_existing(config, agent, |s, now| {
                some((), model::refresh(s, config, agent, now))
            }),
        })
    }

    async fn agents(&self) -> Result<Vec<AgentId>, StoreError> {
        let mut agents: Vec<AgentId> = self.lock().keys().cloned().collect();
        agents.sort();
        Ok(agents)
    }

    /// Each agent with the counts a cache in front of it holds folded in
    /// (as every operation here does), then copied and refreshed in the
    /// copy only.
    async fn read_many(
        &self,
        config: &BreakerConfig,
        agents: &[AgentId],
    ) -> Result<Vec<Result<Option<Snapshot>, StoreError>>, StoreError> {
        let now_ms = self.inner.clock.now_ms();
        let mut read = Vec::with_capacity(agents.len());
        for agent in agents {
            let counted = self.take_counts(agent);
            let (folded, copy) = {
                let mut stored = self.lock();
                match stored.get_mut(agent) {
                    None => (None, None),
                    Some(snapshot) => {
                        let folded = fold(snapshot, config, agent, now_ms, counted.as_ref());
                        let mut copy = snapshot.clone();
                        let _ = model::refresh(&mut copy, config, agent, now_ms);
                        (folded, Some(copy))
                    }
                }
            };
            if let Some(transition) = &folded {
                self.inner.send(transition);
            }
            read.push(Ok(copy));
        }
        Ok(read)
    }

    /// Counted under the lock: no agent is read twice, none missed.
    async fn census(&self, named: &[AgentId]) -> Result<Option<Census>, StoreError> {
        let now_ms = self.inner.clock.now_ms();
        Ok(Some(Census::of_snapshots(&self.lock(), named, now_ms)))
    }

    /// Every transition as the store applies it, always trusted: a sink
    /// (a cache in front of this store) hears each transition and failure
    /// count before the operation returns.
    fn feed(&self) -> Feed {
        let inner = Arc::clone(&self.inner);
        Feed::in_process(move |target| {
            let stats = Arc::new(FeedStats::default());
            stats.connected.store(true, Ordering::Release);
            let sink = target.map(|target| target.sink);
            if let Some(sink) = &sink {
                let mut sinks = inner.sinks.lock().unwrap_or_else(PoisonError::into_inner);
                sinks.push(Arc::downgrade(sink));
                inner.fed.store(true, Ordering::Release);
                sink.trusted();
            }
            FeedHandle::new(stats, inner.transitions.clone(), None, sink)
        })
        // The system clock is no clock to share: a cache in front reads
        // the system's (and may time its successes with a coarse one).
        .with_clock((!self.inner.system_clock).then(|| Arc::clone(&self.inner.clock)))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn journal(&self) -> Option<Arc<dyn RoutingJournal>> {
        Some(Arc::new(self.clone()))
    }
}
