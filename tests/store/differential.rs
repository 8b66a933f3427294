//! Random operation sequences applied to the model, to `MemoryStore` and to
//! `RedisStore` (with Redis time driven by the test-only clock override) give
//! identical decisions, snapshots and transitions.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fleet_breaker::config::AgentSettings;
use fleet_breaker::model::{self, Batch, Report, Ticket};
use fleet_breaker::store::{Applied, BreakerStore, StoreExt};
use fleet_breaker::{
    AgentId, BreakerConfig, ForceMode, ManualClock, MemoryStore, Outcome, RedisStore, Snapshot,
    Transition,
};
use proptest::prelude::*;
use redis::AsyncCommands;

use crate::support::TestRedis;

const AGENTS: [&str; 2] = ["agent-a", "agent-b"];

#[derive(Debug, Clone)]
enum Op {
    Acquire {
        agent: usize,
    },
    Record {
        agent: usize,
        pick: usize,
        outcome: Outcome,
        slow: bool,
        retry_after_ms: Option<u64>,
        pod: usize,
    },
    Configure {
        agent: usize,
        settings: AgentSettings,
    },
    Reset {
        agent: usize,
    },
    Force {
        agent: usize,
        mode: ForceMode,
        ttl_ms: Option<u64>,
    },
    Snapshot {
        agent: usize,
    },
    Flush {
        agent: usize,
        stale: bool,
        successes: u64,
        rejections: u64,
        back_ms: Option<u64>,
    },
    Advance {
        ms: u64,
    },
    /// The clock goes back (a Redis failover to a node whose clock is
    /// behind): buckets ahead of it count nothing.
    Rewind {
        ms: u64,
    },
}

/// Pods reporting outcomes, for the quorum.
const PODS: [&str; 3] = ["pod-a", "pod-b", "pod-c"];

/// Settings an operator may store for an agent: a few fields at a time.
fn settings() -> impl Strategy<Value = AgentSettings> {
    (
        proptest::option::of(1u32..5),
        proptest::option::of(prop_oneof![Just(0.0), Just(0.25), Just(0.5), Just(1.0)]),
        proptest::option::of(1u32..6),
        proptest::option::of(1u32..4),
        proptest::option::of(prop_oneof![Just(0.0), Just(0.5)]),
        proptest::option::of(prop_oneof![Just(1_000u64), Just(2_000)]),
        proptest::option::of(10u64..500),
    )
        .prop_map(
            |(threshold, rate, minimum, pods, jitter, window, base)| AgentSettings {
                failure_threshold: threshold,
                failure_rate_threshold: rate,
                minimum_calls: minimum,
                min_reporting_pods: pods,
                backoff_jitter: jitter,
                window_ms: window,
                base_backoff_ms: base,
                ..AgentSettings::default()
            },
        )
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        3 => Just(Outcome::Failure),
        3 => Just(Outcome::Success),
        1 => Just(Outcome::Neutral),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let agent = 0..AGENTS.len();
    prop_oneof![
        6 => agent.clone().prop_map(|agent| Op::Acquire { agent }),
        6 => (
            agent.clone(),
            any::<usize>(),
            outcome(),
            prop::bool::weighted(0.3),
            proptest::option::weighted(0.1, 1u64..5_000),
            0..PODS.len(),
        )
            .prop_map(|(agent, pick, outcome, slow, retry_after_ms, pod)| Op::Record {
                agent,
                pick,
                outcome,
                slow,
                retry_after_ms,
                pod,
            }),
        1 => (agent.clone(), settings())
            .prop_map(|(agent, settings)| Op::Configure { agent, settings }),
        1 => agent.clone().prop_map(|agent| Op::Reset { agent }),
        1 => (
            agent.clone(),
            prop_oneof![Just(ForceMode::Open), Just(ForceMode::Closed), Just(ForceMode::Auto)],
            proptest::option::of(1u64..3_000),
        )
            .prop_map(|(agent, mode, ttl_ms)| Op::Force { agent, mode, ttl_ms }),
        1 => agent.clone().prop_map(|agent| Op::Snapshot { agent }),
        2 => (agent, any::<bool>(), 0u64..5, 0u64..3, proptest::option::of(0u64..3_000)).prop_map(
            |(agent, stale, successes, rejections, back_ms)| Op::Flush {
                agent,
                stale,
                successes,
                rejections,
                back_ms,
            }
        ),
        4 => prop_oneof![0u64..50, 50u64..4_000].prop_map(|ms| Op::Advance { ms }),
        1 => (1u64..3_000).prop_map(|ms| Op::Rewind { ms }),
    ]
}

fn config() -> impl Strategy<Value = BreakerConfig> {
    let policies = (
        proptest::option::weighted(0.5, prop_oneof![Just(0.3), Just(0.5), Just(1.0)]),
        proptest::option::weighted(0.3, prop_oneof![Just(0.5), Just(1.0)]),
        100u64..300,
        1u32..8,
        prop_oneof![3 => Just(1u32), 1 => 2u32..4],
        prop_oneof![Just(0.0), Just(0.3)],
    );
    (
        1u32..5,
        1u32..4,
        10u64..1_500,
        0u32..20,
        1u64..8,
        50u64..3_000,
        policies,
    )
        .prop_map(
            |(threshold, probes, base, tenths, max_factor, recovery, policies)| {
                let (rate, slow_rate, window_tens, minimum, pods, jitter) = policies;
                BreakerConfig::builder()
                    .failure_threshold(threshold)
                    .half_open_max_calls(probes)
                    .base_backoff(Duration::from_millis(base))
                    .backoff_multiplier(1.0 + f64::from(tenths) / 10.0)
                    .max_backoff(Duration::from_millis(base * max_factor))
                    .recovery_timeout(Duration::from_millis(recovery))
                    .failure_rate_threshold(rate)
                    .slow_call_duration(slow_rate.map(|_| Duration::from_millis(100)))
                    .slow_call_rate_threshold(slow_rate)
                    // 1 to 3 s: buckets of 100 to 300 ms roll over within a case.
                    .window(Duration::from_millis(window_tens * 10))
                    .minimum_calls(minimum)
                    .min_reporting_pods(pods)
                    .backoff_jitter(jitter)
                    .build()
                    .expect("strategy makes valid configs")
            },
        )
}

/// The model applied directly: the reference.
#[derive(Default)]
struct Reference {
    agents: HashMap<AgentId, Snapshot>,
}

/// What one operation produced, in a form all three sides can give.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    decision: Option<model::Decision>,
    snapshot: Option<Snapshot>,
    transition: Option<Transition>,
}

impl Seen {
    fn of<T>(
        applied: Option<Applied<T>>,
        decision: impl FnOnce(&T) -> Option<model::Decision>,
    ) -> Self {
        match applied {
            None => Self {
                decision: None,
                snapshot: None,
                transition: None,
            },
            Some(a) => Self {
                decision: decision(&a.value),
                snapshot: Some(a.snapshot),
                transition: a.transition,
            },
        }
    }
}

impl Reference {
    fn apply(&mut self, config: &BreakerConfig, agent: &AgentId, now: u64, op: &Step) -> Seen {
        let existing = self.agents.contains_key(agent);
        let creates = matches!(op, Step::Acquire(_) | Step::Record(..) | Step::Configure(_));
        if !existing && !creates {
            return Seen {
                decision: None,
                snapshot: None,
                transition: None,
            };
        }
        let s = self
            .agents
            .entry(agent.clone())
            .or_insert_with(|| Snapshot::fresh(config));
        let (decision, transition) = match op {
            Step::Acquire(id) => {
                let step = model::acquire(s, config, agent, now, id);
                (Some(step.decision), step.transition)
            }
            Step::Record(ticket, report) => (
                None,
                model::record(s, config, agent, now, ticket, &report.as_report()),
            ),
            Step::Configure(settings) => {
                model::configure(s, *settings);
                (None, model::refresh(s, config, agent, now))
            }
            Step::Reset => (None, Some(model::reset(s, config, agent, now))),
            Step::Force(mode, ttl) => {
                (None, Some(model::force(s, config, agent, now, *mode, *ttl)))
            }
            Step::Snapshot => (None, model::refresh(s, config, agent, now)),
            Step::Flush(batch) => (None, model::flush(s, config, agent, now, batch)),
        };
        Seen {
            decision,
            snapshot: Some(s.clone()),
            transition,
        }
    }
}

/// One store-level operation with its arguments resolved.
enum Step {
    Acquire(String),
    Record(Ticket, Reported),
    Configure(AgentSettings),
    Reset,
    Force(ForceMode, Option<u64>),
    Snapshot,
    Flush(Batch),
}

/// A [`Report`] that owns nothing (its pod is one of [`PODS`]).
#[derive(Debug, Clone, Copy)]
struct Reported {
    outcome: Outcome,
    slow: bool,
    retry_after_ms: Option<u64>,
    pod: usize,
}

impl Reported {
    fn as_report(&self) -> Report<'static> {
        Report {
            outcome: self.outcome,
            slow: self.slow,
            retry_after_ms: self.retry_after_ms,
            pod: PODS[self.pod],
        }
    }
}

async fn apply_store(
    store: &dyn BreakerStore,
    config: &BreakerConfig,
    agent: &AgentId,
    step: &Step,
) -> Seen {
    let result = match step {
        Step::Acquire(id) => store
            .acquire(config, agent, id)
            .await
            .map(|a| Seen::of(Some(a), |d| Some(*d))),
        Step::Record(ticket, report) => store
            .report(config, agent, ticket, report.as_report())
            .await
            .map(|a| Seen::of(Some(a), |()| None)),
        Step::Configure(settings) => store
            .configure(config, agent, settings)
            .await
            .map(|a| Seen::of(Some(a), |()| None)),
        Step::Reset => store
            .reset(config, agent)
            .await
            .map(|a| Seen::of(a, |()| None)),
        Step::Force(mode, ttl) => store
            .force(config, agent, *mode, ttl.map(Duration::from_millis))
            .await
            .map(|a| Seen::of(a, |()| None)),
        Step::Snapshot => store
            .snapshot(config, agent)
            .await
            .map(|a| Seen::of(a, |()| None)),
        Step::Flush(batch) => store
            .flush(config, agent, batch)
            .await
            .map(|a| Seen::of(a, |()| None)),
    };
    result.unwrap_or_else(|e| panic!("{} store failed: {e}", store.kind()))
}

static CASE: AtomicU64 = AtomicU64::new(0);

async fn run_case(
    redis: &TestRedis,
    config: BreakerConfig,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let clock = ManualClock::default();
    let memory = MemoryStore::with_clock(Arc::new(clock.clone()));
    let prefix = format!(
        "{}-{}",
        crate::support::unique_prefix("differential"),
        CASE.fetch_add(1, Ordering::SeqCst)
    );
    let redis_store = RedisStore::builder(redis.url())
        .prefix(prefix)
        .timeout(Duration::from_secs(5))
        .clock_override(Arc::new(clock.clone()))
        .build()
        .await
        .expect("connect to the test Redis");
    let mut reference = Reference::default();
    let mut tickets: Vec<(usize, Ticket)> = Vec::new();
    let mut transitions = Vec::new();
    let mut permit_ids = 0u64;

    for (index, op) in ops.iter().enumerate() {
        let (agent_index, step) = match *op {
            Op::Advance { ms } => {
                clock.advance(Duration::from_millis(ms));
                continue;
            }
            Op::Rewind { ms } => {
                clock.set(clock.now_ms_for_test() - ms);
                continue;
            }
            Op::Configure { agent, settings } => (agent, Step::Configure(settings)),
            Op::Acquire { agent } => {
                permit_ids += 1;
                (agent, Step::Acquire(format!("permit-{permit_ids:04}")))
            }
            Op::Record {
                agent,
                pick,
                outcome,
                slow,
                retry_after_ms,
                pod,
            } => {
                let mine: Vec<usize> = (0..tickets.len())
                    .filter(|&i| tickets[i].0 == agent)
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let (_, ticket) = tickets.remove(mine[pick % mine.len()]);
                let report = Reported {
                    outcome,
                    slow,
                    retry_after_ms,
                    pod,
                };
                (agent, Step::Record(ticket, report))
            }
            Op::Reset { agent } => (agent, Step::Reset),
            Op::Force {
                agent,
                mode,
                ttl_ms,
            } => (agent, Step::Force(mode, ttl_ms)),
            Op::Snapshot { agent } => (agent, Step::Snapshot),
            Op::Flush {
                agent,
                stale,
                successes,
                rejections,
                back_ms,
            } => {
                // A batch of the agent's current generation (or an older
                // one), its last success some time ago.
                let id = AgentId::new(AGENTS[agent]).expect("valid id");
                let current = reference.agents.get(&id).map_or(0, |s| s.generation);
                let now = clock.now_ms_for_test();
                let batch = Batch {
                    generation: current.saturating_sub(u64::from(stale)),
                    successes,
                    last_success_ms: back_ms.map(|back| now - back),
                    rejections,
                };
                (agent, Step::Flush(batch))
            }
        };
        let agent = AgentId::new(AGENTS[agent_index]).expect("valid id");
        // A read of many agents (no script on Redis) finds what the
        // snapshot script is about to answer, without writing it.
        let peeked = if matches!(step, Step::Snapshot) {
            let read = |store: &'static str, result: Result<Vec<_>, _>| {
                let mut read: Vec<Result<Option<Snapshot>, _>> =
                    result.unwrap_or_else(|e| panic!("{store} read_many failed: {e}"));
                let mut snapshot = read.pop().expect("one agent").expect("not corrupt");
                if let Some(s) = &mut snapshot {
                    s.epoch = 0;
                }
                snapshot
            };
            let agents = [agent.clone()];
            Some((
                read("memory", memory.read_many(&config, &agents).await),
                read("redis", redis_store.read_many(&config, &agents).await),
            ))
        } else {
            None
        };
        let expected = reference.apply(&config, &agent, clock.now_ms_for_test(), &step);
        if let Some((memory_read, redis_read)) = peeked {
            prop_assert_eq!(
                &memory_read,
                &expected.snapshot,
                "memory read_many at op {}",
                index
            );
            prop_assert_eq!(
                &redis_read,
                &expected.snapshot,
                "redis read_many at op {}",
                index
            );
        }
        let from_memory = apply_store(&memory, &config, &agent, &step).await;
        let from_redis = apply_store(&redis_store, &config, &agent, &step).await;
        // The epoch is the store's own (Redis TIME when the hash was made):
        // the model and the memory store carry 0. It is checked here to be
        // set and the same in the snapshot and the transition, then left out.
        let from_redis = without_epoch(from_redis);
        prop_assert_eq!(
            &from_memory,
            &expected,
            "memory store diverged at op {} ({:?})",
            index,
            op
        );
        prop_assert_eq!(
            &from_redis,
            &expected,
            "redis store diverged at op {} ({:?})",
            index,
            op
        );
        if let (Step::Acquire(id), Some(model::Decision::Granted(grant))) =
            (&step, expected.decision)
        {
            tickets.push((
                agent_index,
                Ticket {
                    permit_id: id.clone(),
                    generation: grant.generation,
                },
            ));
        }
        transitions.extend(expected.transition);
    }

    // Every transition was appended to the stream once, in order.
    let mut conn = redis.connection().await;
    let entries: redis::streams::StreamRangeReply = conn
        .xrange_all(redis_store.keys().transitions())
        .await
        .expect("read the transitions stream");
    let published: Vec<Transition> = entries
        .ids
        .iter()
        .map(|entry| {
            let json: String = entry.get("msg").expect("a msg field");
            let t: Transition = serde_json::from_str(&json).expect("a transition message");
            assert_ne!(t.epoch, 0, "a published transition carries its epoch");
            Transition { epoch: 0, ..t }
        })
        .collect();
    prop_assert_eq!(published, transitions);
    Ok(())
}

/// `seen` with its epoch checked (set, and the transition's the
/// snapshot's) and then zeroed, as the model has none.
fn without_epoch(mut seen: Seen) -> Seen {
    if let Some(snapshot) = &mut seen.snapshot {
        assert_ne!(snapshot.epoch, 0, "a Redis snapshot carries its epoch");
        if let Some(t) = &mut seen.transition {
            assert_eq!(
                t.epoch, snapshot.epoch,
                "the transition's epoch is the snapshot's"
            );
            t.epoch = 0;
        }
        snapshot.epoch = 0;
    }
    seen
}

/// Reads the manual clock (a helper so the test reads like the contract).
trait NowForTest {
    fn now_ms_for_test(&self) -> u64;
}

impl NowForTest for ManualClock {
    fn now_ms_for_test(&self) -> u64 {
        fleet_breaker::Clock::now_ms(self)
    }
}

#[test]
fn model_memory_store_and_redis_store_agree_on_random_sequences() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let redis = runtime.block_on(TestRedis::start());
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(96);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        source_file: Some(file!()),
        ..ProptestConfig::default()
    });
    let result = runner.run(
        &(config(), proptest::collection::vec(op(), 1..80)),
        |(config, ops)| runtime.block_on(run_case(&redis, config, ops)),
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
