//! `fleet-breaker demo`: simulated router pods and flaky agents, with the
//! dashboard. On the embedded store when no Redis is given.
//!
//! The agents, tried in this order by every task:
//!
//! - `agent-1`, the primary: dies for the first half of every `--cycle`
//!   (default 20 s, by the wall clock, so several demo processes agree) and
//!   recovers for the second half;
//! - `agent-2`, the secondary: fails one call in ten;
//! - `agent-3`, the backup: always answers, slowly.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;

use super::output::{status_table, transition_line};
use super::serve::{admin_token, print_admin};
use super::{CliError, Connection, DemoArgs, StoreArgs, listen, stop_signals, stopped};
use crate::agent_id::AgentId;
use crate::http::{AdminToken, AppState, Metrics};
use crate::router::{FailoverRouter, RouteError};

/// The simulated agents, in priority order.
const AGENTS: [&str; 3] = ["agent-1", "agent-2", "agent-3"];

/// Where the dashboard listens by default (the next free port if taken).
const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// The environment variable that replaces [`DEFAULT_ADDR`] (still a
/// default: the next free port is taken when it is busy, unlike `--bind`).
const DEMO_ADDR_ENV: &str = "FLEET_BREAKER_DEMO_ADDR";

/// How often the demo prints its running totals.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Tasks routed by every pod of this process, by how they ended.
#[derive(Debug, Default)]
struct Tally {
    first_choice: AtomicU64,
    failed_over: AtomicU64,
    unserved: AtomicU64,
}

impl Tally {
    fn line(&self) -> String {
        let first = self.first_choice.load(Ordering::Relaxed);
        let over = self.failed_over.load(Ordering::Relaxed);
        let lost = self.unserved.load(Ordering::Relaxed);
        format!(
            "{} tasks routed: {first} by their first choice, {over} after failing over, {lost} unserved",
            first + over + lost
        )
    }
}

/// Runs the demo until Ctrl-C or `--duration`.
pub(super) async fn run(store: &StoreArgs, args: DemoArgs) -> Result<(), CliError> {
    // What can fail comes first: nothing (the made token) is printed before
    // the settings, the store and the port are known good.
    let given_token = admin_token(args.admin_token.as_ref())?;
    let mut stop = stop_signals(args.duration);
    let connection = Connection::redis_or_embedded(store).await?;
    let listener = if args.no_serve {
        None
    } else {
        Some(bind(args.bind.as_deref()).await?)
    };
    let token = match given_token {
        Some(token) => token,
        None => {
            let made = uuid::Uuid::new_v4().simple().to_string();
            println!("admin token for the dashboard's buttons (made for this run): {made}");
            AdminToken::new(made)?
        }
    };
    println!(
        "fleet-breaker demo: {} pods, agents {} on {}",
        args.pods,
        AGENTS.join(", "),
        connection.description
    );
    println!(
        "agent-1 is down for the first half of every {} (wall clock); agent-2 fails 1 call in 10",
        humantime::format_duration(args.cycle)
    );

    let metrics = Metrics::new();
    let tally = Arc::new(Tally::default());
    let mut routers = Vec::new();
    for n in 1..=args.pods {
        let instance = format!("{}-pod-{n}", args.instance);
        let metered = (n == 1).then_some(&metrics);
        let breaker = connection.breaker(&instance, metered, connection.is_redis(), true)?;
        routers.push(FailoverRouter::builder(breaker).max_retries(3).build()?);
    }
    let first = routers[0].clone();
    metrics.watch(first.breaker());
    let mut transitions = Box::pin(first.breaker().subscribe());
    let printer = tokio::spawn(async move {
        while let Some(t) = transitions.next().await {
            println!("transition: {}", transition_line(&t));
        }
    });
    let pods: Vec<_> = routers
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, router)| {
            let tally = Arc::clone(&tally);
            let cycle = args.cycle;
            let every = Duration::from_secs_f64(1.0 / f64::from(args.rate));
            tokio::spawn(run_pod(router, i, every, cycle, tally))
        })
        .collect();
    let reporter = tokio::spawn(report(Arc::clone(&tally), stop.clone(), args.duration));

    let stop = if let Some(listener) = listener {
        let state = AppState::new(first.clone())
            .with_admin_token(Some(token))
            .with_metrics(metrics);
        println!(
            "fleet-breaker serve: listening on http://{}",
            listen::local_addr(&listener)?
        );
        println!("  store: {}", connection.description);
        print_admin(state.admin_enabled());
        let closing = state.clone();
        let app = crate::http::router(state);
        listen::serve(listener, app, args.listen.options(), &stop, move || {
            closing.close_streams();
        })
        .await
    } else {
        stopped(&mut stop).await
    };
    println!("fleet-breaker demo: stopped ({stop})");

    for task in pods.iter().chain([&reporter, &printer]) {
        task.abort();
    }
    for router in &routers {
        let _ = router.flush_routing_events().await;
        let _ = router.breaker().flush().await;
    }
    println!("final tally: {}", tally.line());
    match first.health_status().await {
        Ok(health) => print!("{}", status_table(health.agents.values())),
        Err(error) => println!("(the final status could not be read: {error})"),
    }
    Ok(())
}

/// Prints the running totals every [`REPORT_EVERY`] until the stop; the
/// final tally is the caller's. A report due less than half a period
/// before the end of `duration` is skipped: it would be the final tally,
/// said twice.
async fn report(
    tally: Arc<Tally>,
    mut stop: tokio::sync::watch::Receiver<Option<super::Stop>>,
    duration: Option<Duration>,
) {
    let ends_at = duration.map(|d| tokio::time::Instant::now() + d);
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => return,
            _ = tick.tick() => {}
        }
        let now = tokio::time::Instant::now();
        if ends_at.is_some_and(|end| end.saturating_duration_since(now) < REPORT_EVERY / 2) {
            return;
        }
        println!("{}", tally.line());
    }
}

/// Where the dashboard listens: `--bind` (or `FLEET_BREAKER_BIND`) as
/// given, else [`DEMO_ADDR_ENV`] or [`DEFAULT_ADDR`], moving to the next
/// free port when that one is taken.
async fn bind(explicit: Option<&str>) -> Result<tokio::net::TcpListener, CliError> {
    if let Some(bind) = explicit {
        return listen::bind(bind).await;
    }
    let default = std::env::var(DEMO_ADDR_ENV)
        .ok()
        .filter(|addr| !addr.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    listen::bind_or_next_free(default.trim()).await
}

/// One pod: routes a task every `every` until aborted.
async fn run_pod(
    router: FailoverRouter,
    pod: usize,
    every: Duration,
    cycle: Duration,
    tally: Arc<Tally>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rng = Rng::seeded();
    for n in 0u64.. {
        tick.tick().await;
        let roll = rng.next_fraction();
        let task = format!("pod{pod}-task-{n}");
        let result = router
            .route_task(
                &task,
                AGENTS,
                |agent, roll| simulated_call(agent, roll, cycle),
                roll,
            )
            .await;
        let counter = match &result {
            Ok(routed) if routed.attempts == 1 && routed.history.is_empty() => &tally.first_choice,
            Ok(_) => &tally.failed_over,
            Err(RouteError::AllAgentsFailed(_)) | Err(_) => &tally.unserved,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What each simulated agent does with a call.
async fn simulated_call(
    agent: AgentId,
    roll: f64,
    cycle: Duration,
) -> Result<&'static str, String> {
    match agent.as_str() {
        "agent-1" => {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if in_outage(cycle) {
                Err("connection refused".to_owned())
            } else {
                Ok("served by the primary")
            }
        }
        "agent-2" => {
            tokio::time::sleep(Duration::from_millis(15)).await;
            if roll < 0.1 {
                Err("503 service unavailable".to_owned())
            } else {
                Ok("served by the secondary")
            }
        }
        _ => {
            tokio::time::sleep(Duration::from_millis(40)).await;
            Ok("served by the backup")
        }
    }
}

/// Whether agent-1 is down now: the first half of every cycle of the wall clock.
fn in_outage(cycle: Duration) -> bool {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let cycle_ms = cycle.as_millis().max(2);
    now_ms % cycle_ms < cycle_ms / 2
}

/// A small xorshift generator: the demo's dice need no crate.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        // Truncation intended: any 64 bits of a random UUID seed well.
        #[allow(clippy::cast_possible_truncation)]
        let seed = uuid::Uuid::new_v4().as_u128() as u64;
        Self(seed | 1)
    }

    /// A number in [0, 1).
    fn next_fraction(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        #[allow(clippy::cast_precision_loss)] // 53 bits kept on purpose
        let top = (self.0 >> 11) as f64;
        top / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_stay_in_range_and_vary() {
        let mut rng = Rng::seeded();
        let draws: Vec<f64> = (0..10_000).map(|_| rng.next_fraction()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let below = draws.iter().filter(|d| **d < 0.1).count();
        assert!((700..1300).contains(&below), "{below} of 10000 below 0.1");
    }
}
