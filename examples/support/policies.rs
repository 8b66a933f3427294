//! The fleet example's trip-policy scenarios (`--scenario rate`,
//! `--scenario sick-pod`): what sharing the window of calls buys over
//! per-pod breakers with the same settings, and what a quorum buys when
//! one pod alone sees an agent fail.
//!
//! `rate`: agent-c gets 1 call in 100 of every pod's and, from a moment on,
//! fails 30% of them at random: no pod ever sees 10 failures in a row, nor
//! the 50 calls the rate needs in its own 2 s window; the fleet sees both.
//! `sick-pod`: pod 0 alone sees agent-a fail (its network path is broken);
//! with `min_reporting_pods` 2 the fleet keeps calling agent-a from the
//! healthy pods, and only pod 0 stops; with 1 the fleet opens.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fleet_breaker::{
    AgentId, BreakerConfig, CircuitBreaker, CircuitState, MemoryStore, RedisStore, RedisTarget,
    RejectCause,
};
use redis::aio::MultiplexedConnection;
use tokio_stream::StreamExt;

use super::{AnyError, Options, client_commands_on, commandstats_all, wait_for, wall_ms};

/// One call in this many goes to agent-c.
const C_SHARE: u64 = 100;
/// Share of agent-c's calls that fail once it is failing, in percent.
const C_FAILURE_PERCENT: u64 = 30;
/// Rate settings: 20% of the calls of a 2 s window, at least 50 calls.
const RATE: f64 = 0.2;
const WINDOW: Duration = Duration::from_secs(2);
const MINIMUM_CALLS: u32 = 50;
/// Consecutive failures: 10 (30% failures make 10 in a row very rare).
const THRESHOLD: u32 = 10;
/// How long a run waits for every pod to stop calling agent-c.
const RATE_LIMIT: Duration = Duration::from_secs(10);

fn rate_config(windowed: bool) -> Result<BreakerConfig, AnyError> {
    let builder = BreakerConfig::builder()
        .failure_threshold(THRESHOLD)
        .base_backoff(Duration::from_secs(2))
        .max_backoff(Duration::from_secs(10))
        .window(WINDOW)
        .minimum_calls(MINIMUM_CALLS);
    let builder = if windowed {
        builder.failure_rate_threshold(Some(RATE))
    } else {
        builder
    };
    Ok(builder.build()?)
}

/// A small deterministic generator (xorshift64*), one per pod.
struct Dice(u64);

impl Dice {
    fn percent(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % 100
    }
}

/// What the pods of one run share.
#[derive(Debug, Default)]
struct Tally {
    c_failing: AtomicBool,
    stop: AtomicBool,
    c_calls: AtomicU64,
    c_failed: AtomicU64,
    /// Per pod: whether its circuit for agent-c is open as it last heard.
    c_open: Vec<AtomicBool>,
    /// When the last pod heard agent-c open (wall ms), and the transition's
    /// time: the delay from the crossing to every pod rejecting.
    all_open_delay_ms: std::sync::Mutex<Vec<f64>>,
}

impl Tally {
    fn new(pods: usize) -> Arc<Self> {
        Arc::new(Self {
            c_open: (0..pods).map(|_| AtomicBool::new(false)).collect(),
            ..Self::default()
        })
    }
    fn all_open(&self) -> bool {
        self.c_open.iter().all(|o| o.load(Ordering::Acquire))
    }
}

async fn rate_pod(index: usize, breaker: CircuitBreaker, tally: Arc<Tally>, per_sec: u64) {
    let agents = [
        AgentId::new("agent-a").expect("valid"),
        AgentId::new("agent-b").expect("valid"),
        AgentId::new("agent-c").expect("valid"),
    ];
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1));
    let mut ticks = tokio::time::interval(Duration::from_millis(5));
    let start = Instant::now();
    let mut made = 0u64;
    while !tally.stop.load(Ordering::Acquire) {
        ticks.tick().await;
        let due = (start.elapsed().as_secs_f64() * per_sec as f64) as u64;
        for _ in 0..due.saturating_sub(made).min(per_sec / 50 + 1) {
            made += 1;
            let to_c = made.is_multiple_of(C_SHARE);
            let agent = if to_c {
                &agents[2]
            } else {
                &agents[(made % 2) as usize]
            };
            let Ok(permit) = breaker.acquire(agent).await else {
                continue;
            };
            if !to_c {
                permit.success().await;
                continue;
            }
            tally.c_calls.fetch_add(1, Ordering::Relaxed);
            if tally.c_failing.load(Ordering::Acquire) && dice.percent() < C_FAILURE_PERCENT {
                tally.c_failed.fetch_add(1, Ordering::Relaxed);
                permit.failure("agent-c failed").await;
            } else {
                permit.success().await;
            }
        }
    }
}

/// Follows each pod's transitions of agent-c.
fn listen(pods: &[CircuitBreaker], tally: &Arc<Tally>) -> Vec<tokio::task::JoinHandle<()>> {
    pods.iter()
        .enumerate()
        .map(|(i, pod)| {
            let mut stream = Box::pin(pod.subscribe());
            let tally = Arc::clone(tally);
            tokio::spawn(async move {
                while let Some(t) = stream.next().await {
                    if t.agent_id.as_str() != "agent-c" {
                        continue;
                    }
                    let open = !t.to.admits_all();
                    tally.c_open[i].store(open, Ordering::Release);
                    if open && tally.all_open() {
                        let mut delays = tally
                            .all_open_delay_ms
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        delays.push(wall_ms() - t.at_ms as f64);
                    }
                }
            })
        })
        .collect()
}

/// What one rate run measured.
#[derive(Debug, Default)]
struct RateRun {
    commands_per_pod_sec: Option<f64>,
    trip_ms: Option<f64>,
    c_calls: u64,
    c_failed: u64,
    all_open_delay_ms: Option<f64>,
}

/// One run: a healthy window whose Redis commands are counted, then
/// agent-c failing until every pod has stopped calling it (or the limit).
async fn rate_run(
    pods: &[CircuitBreaker],
    options: Options,
    nodes: Option<&mut [MultiplexedConnection]>,
) -> Result<RateRun, AnyError> {
    let tally = Tally::new(pods.len());
    let listeners = listen(pods, &tally);
    let tasks: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, b)| {
            tokio::spawn(rate_pod(
                i,
                b.clone(),
                Arc::clone(&tally),
                options.calls_per_sec,
            ))
        })
        .collect();
    let mut run = RateRun::default();
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let Some(nodes) = nodes {
        let before = commandstats_all(nodes).await?;
        let start = Instant::now();
        tokio::time::sleep(options.steady).await;
        let sent: u64 =
            client_commands_on(&before, &commandstats_all(nodes).await?, nodes.len() as u64)
                .values()
                .sum();
        run.commands_per_pod_sec =
            Some(sent as f64 / start.elapsed().as_secs_f64() / pods.len() as f64);
    } else {
        tokio::time::sleep(options.steady).await;
    }
    let (calls_before, failed_before) = (
        tally.c_calls.load(Ordering::Relaxed),
        tally.c_failed.load(Ordering::Relaxed),
    );
    tally.c_failing.store(true, Ordering::Release);
    let tripped = wait_for("every pod to stop calling agent-c", RATE_LIMIT, || {
        tally.all_open()
    })
    .await;
    run.trip_ms = tripped.ok().map(|d| d.as_secs_f64() * 1e3);
    if run.trip_ms.is_none() {
        println!("  not every pod stopped calling agent-c within {RATE_LIMIT:?}");
    }
    run.c_calls = tally.c_calls.load(Ordering::Relaxed) - calls_before;
    run.c_failed = tally.c_failed.load(Ordering::Relaxed) - failed_before;
    run.all_open_delay_ms = tally
        .all_open_delay_ms
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .first()
        .copied();
    tally.stop.store(true, Ordering::Release);
    for task in tasks {
        let _ = task.await;
    }
    for listener in listeners {
        listener.abort();
    }
    Ok(run)
}

async fn shared_fleet(
    target: &RedisTarget,
    prefix: &str,
    pods: usize,
    config: BreakerConfig,
) -> Result<Vec<CircuitBreaker>, AnyError> {
    let mut fleet = Vec::with_capacity(pods);
    for i in 0..pods {
        let store = RedisStore::builder_for(target.clone())
            .prefix(prefix)
            .pool_size(4)
            .build()
            .await?;
        fleet.push(
            CircuitBreaker::builder()
                .store(store)
                .config(config)
                .instance_id(format!("pod-{i}"))
                .build()?,
        );
    }
    wait_for("every pod's subscription", Duration::from_secs(5), || {
        fleet.iter().all(CircuitBreaker::is_watching)
    })
    .await?;
    Ok(fleet)
}

/// `--scenario rate`.
pub(crate) async fn rate(
    target: &RedisTarget,
    prefix: &str,
    options: Options,
    nodes: &mut [MultiplexedConnection],
) -> Result<serde_json::Value, AnyError> {
    println!(
        "{} pods, {} calls/s each, 1 in {C_SHARE} to agent-c, which starts failing {C_FAILURE_PERCENT}% \
         of its calls at random; failure_rate_threshold {RATE} over {WINDOW:?} with at least \
         {MINIMUM_CALLS} calls, failure_threshold {THRESHOLD}",
        options.pods, options.calls_per_sec
    );
    // The consecutive rule alone, shared: the Redis load to compare with.
    let consecutive = shared_fleet(
        target,
        &format!("{prefix}-c"),
        options.pods,
        rate_config(false)?,
    )
    .await?;
    println!("[consecutive-only] healthy window, then agent-c failing");
    let plain = rate_run(&consecutive, options, Some(&mut *nodes)).await?;
    drop(consecutive);
    let fleet = shared_fleet(
        target,
        &format!("{prefix}-r"),
        options.pods,
        rate_config(true)?,
    )
    .await?;
    println!("[shared rate] healthy window, then agent-c failing");
    let shared = rate_run(&fleet, options, Some(&mut *nodes)).await?;
    drop(fleet);
    let local: Vec<CircuitBreaker> = (0..options.pods)
        .map(|_| {
            CircuitBreaker::builder()
                .store(MemoryStore::new())
                .config(rate_config(true)?)
                .build()
                .map_err(AnyError::from)
        })
        .collect::<Result<_, _>>()?;
    println!("[local-only rate] the same, per-pod breakers");
    let local = rate_run(&local, options, None).await?;

    let show = |label: &str, run: &RateRun| {
        println!(
            "[{label}] every pod stopped calling agent-c {} after it began failing; {} calls to it \
             meanwhile, {} failed",
            run.trip_ms
                .map_or("never (within the limit)".to_owned(), |ms| format!(
                    "{ms:.0} ms"
                )),
            run.c_calls,
            run.c_failed
        );
    };
    println!();
    show("consecutive-only", &plain);
    show("shared rate", &shared);
    show("local-only rate", &local);
    let (c, r) = (
        plain.commands_per_pod_sec.unwrap_or(f64::NAN),
        shared.commands_per_pod_sec.unwrap_or(f64::NAN),
    );
    println!(
        "Redis commands per pod-second, healthy window: consecutive-only {c:.3}, rate policy on {r:.3} \
         ({:.2}x)",
        r / c
    );
    if let Some(delay) = shared.all_open_delay_ms {
        println!(
            "[shared rate] from the trip (transition at_ms) to the last pod hearing it: {delay:.3} ms"
        );
    }
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    Ok(serde_json::json!({
        "scenario": "rate",
        "pods": options.pods,
        "calls_per_sec_per_pod": options.calls_per_sec,
        "rate_trip_ms": shared.trip_ms.map(|ms| ms.round()),
        "rate_wasted_calls": shared.c_calls,
        "rate_failed_calls": shared.c_failed,
        "local_only_rate_trip_ms": local.trip_ms.map(|ms| ms.round()),
        "local_only_rate_wasted_calls": local.c_calls,
        "local_only_rate_failed_calls": local.c_failed,
        "consecutive_only_trip_ms": plain.trip_ms.map(|ms| ms.round()),
        "consecutive_only_wasted_calls": plain.c_calls,
        "rate_trip_to_every_pod_ms": shared.all_open_delay_ms.map(round3),
        "redis_commands_per_pod_per_sec_consecutive_only": round3(c),
        "redis_commands_per_pod_per_sec_rate": round3(r),
    }))
}

/// `--scenario sick-pod`: a run with `min_reporting_pods` `quorum`.
async fn sick_run(
    target: &RedisTarget,
    prefix: &str,
    options: Options,
    quorum: u32,
) -> Result<(bool, u64, u64, u64), AnyError> {
    let config = BreakerConfig::builder()
        .min_reporting_pods(quorum)
        .base_backoff(Duration::from_secs(1))
        .build()?;
    let pods = shared_fleet(target, prefix, options.pods, config).await?;
    let agent = AgentId::new("agent-a")?;
    let opened = Arc::new(AtomicBool::new(false));
    let mut stream = Box::pin(pods[1].subscribe());
    let seen = Arc::clone(&opened);
    let listener = tokio::spawn(async move {
        while let Some(t) = stream.next().await {
            if t.agent_id.as_str() == "agent-a" && t.to == CircuitState::Open {
                seen.store(true, Ordering::Release);
            }
        }
    });
    let (healthy_calls, local_rejections, sick_calls) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let per_pod = options.calls_per_sec / 2;
    let tasks: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let (pod, agent, stop) = (pod.clone(), agent.clone(), Arc::clone(&stop));
            let (healthy, local, sick) = (
                Arc::clone(&healthy_calls),
                Arc::clone(&local_rejections),
                Arc::clone(&sick_calls),
            );
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(Duration::from_millis(10));
                while !stop.load(Ordering::Acquire) {
                    ticks.tick().await;
                    for _ in 0..per_pod / 100 {
                        match pod.acquire(&agent).await {
                            Ok(permit) if i == 0 => {
                                sick.fetch_add(1, Ordering::Relaxed);
                                permit.failure("no route to agent-a from pod 0").await;
                            }
                            Ok(permit) => {
                                healthy.fetch_add(1, Ordering::Relaxed);
                                permit.success().await;
                            }
                            Err(r) if r.cause == RejectCause::LocalQuorum => {
                                local.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {}
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Release);
    for task in tasks {
        let _ = task.await;
    }
    listener.abort();
    Ok((
        opened.load(Ordering::Acquire),
        healthy_calls.load(Ordering::Relaxed),
        sick_calls.load(Ordering::Relaxed),
        local_rejections.load(Ordering::Relaxed),
    ))
}

/// `--scenario sick-pod`.
pub(crate) async fn sick_pod(
    target: &RedisTarget,
    prefix: &str,
    options: Options,
) -> Result<serde_json::Value, AnyError> {
    println!(
        "{} pods call agent-a for 3 s; pod 0 alone sees every call fail; min_reporting_pods 2, \
         then 1",
        options.pods
    );
    let (opened, healthy, sick, local) =
        sick_run(target, &format!("{prefix}-q2"), options, 2).await?;
    println!(
        "[quorum 2] fleet opened agent-a: {opened}; healthy pods made {healthy} calls to it; pod 0 \
         made {sick} failed calls, then refused {local} calls itself (open on pod 0 only)"
    );
    let (opened_1, healthy_1, sick_1, _) =
        sick_run(target, &format!("{prefix}-q1"), options, 1).await?;
    println!(
        "[quorum 1] fleet opened agent-a: {opened_1}; healthy pods made {healthy_1} calls to it; pod 0 \
         made {sick_1} failed calls"
    );
    let mut json = BTreeMap::new();
    json.insert("scenario", serde_json::json!("sick-pod"));
    json.insert("pods", serde_json::json!(options.pods));
    json.insert("sick_pod_fleet_opened", serde_json::json!(opened));
    json.insert("sick_pod_healthy_calls", serde_json::json!(healthy));
    json.insert("sick_pod_failed_calls", serde_json::json!(sick));
    json.insert("sick_pod_local_rejections", serde_json::json!(local));
    json.insert(
        "sick_pod_fleet_opened_quorum_1",
        serde_json::json!(opened_1),
    );
    json.insert(
        "sick_pod_healthy_calls_quorum_1",
        serde_json::json!(healthy_1),
    );
    Ok(serde_json::to_value(json)?)
}
