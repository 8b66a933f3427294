//! Load on a fleet: every pod routing tasks in a loop, each route timed,
//! and the assertions on those timings.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fleet_breaker::AgentId;
use tokio::task::JoinHandle;

use crate::common::{DEGRADED_ROUTE_BOUND, Pod, ROUTE_BOUND, TIMEOUT};
use crate::support::wait_until;

/// Between two routes of one pod: eight pods then route about 3,000 tasks a
/// second in all, without starving the machine's two cores.
const PACE: Duration = Duration::from_millis(2);

/// One timed route.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) pod: String,
    pub(crate) started: Instant,
    pub(crate) took: Duration,
    /// Whether the pod was degraded when the route began.
    pub(crate) degraded: bool,
    /// The agent that served it, or the route's error.
    pub(crate) result: Result<AgentId, String>,
    /// What happened to the agents passed over before the serving one.
    pub(crate) passed_over: String,
}

impl Sample {
    fn ended(&self) -> Instant {
        self.started + self.took
    }
}

/// Every pod routing tasks in a loop, each route timed.
#[derive(Debug)]
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    /// Per pod (name, routes ended so far), while the loops run.
    ended: Vec<(String, Arc<AtomicU64>)>,
    tasks: Vec<(String, JoinHandle<Vec<Sample>>)>,
}

impl Load {
    pub(crate) fn start(pods: &[Arc<Pod>]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ended: Vec<_> = pods
            .iter()
            .map(|pod| (pod.name.clone(), Arc::new(AtomicU64::new(0))))
            .collect();
        let tasks = pods
            .iter()
            .zip(&ended)
            .map(|(pod, (_, routes_ended))| {
                let name = pod.name.clone();
                let (pod, stop) = (Arc::clone(pod), Arc::clone(&stop));
                let routes_ended = Arc::clone(routes_ended);
                let task = tokio::spawn(async move {
                    let mut samples = Vec::new();
                    let mut task = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let degraded = pod.breaker().is_degraded();
                        let started = Instant::now();
                        let routed = pod.route(task).await;
                        let took = started.elapsed();
                        let (result, passed_over) = match routed {
                            Ok((agent, passed_over)) => (Ok(agent), passed_over),
                            Err(error) => (Err(error), String::new()),
                        };
                        samples.push(Sample {
                            pod: pod.name.clone(),
                            started,
                            took,
                            degraded,
                            result,
                            passed_over,
                        });
                        routes_ended.fetch_add(1, Ordering::SeqCst);
                        task += 1;
                        // The load's pacing, part of the scenario.
                        tokio::time::sleep(PACE).await;
                    }
                    samples
                });
                (name, task)
            })
            .collect();
        Load { stop, ended, tasks }
    }

    /// Waits (within `bound`) until every pod has ended `n` more routes
    /// than it had when called: a stretch of the scenario counted in
    /// routes, which a slow machine cannot skip as it can a stretch of time.
    /// Every route a pod had in flight has ended once it ends one more.
    pub(crate) async fn each_routes(&self, n: u64, bound: Duration) {
        self.routes_of(|_| true, n, bound).await;
    }

    /// [`Load::each_routes`] for the pod named `pod` alone.
    pub(crate) async fn routes_of_pod(&self, pod: &str, n: u64, bound: Duration) {
        self.routes_of(|name| name == pod, n, bound).await;
    }

    async fn routes_of(&self, which: impl Fn(&str) -> bool, n: u64, bound: Duration) {
        let goals: Vec<(&Arc<AtomicU64>, u64)> = self
            .ended
            .iter()
            .filter(|(name, _)| which(name))
            .map(|(_, ended)| (ended, ended.load(Ordering::SeqCst) + n))
            .collect();
        assert!(!goals.is_empty(), "no such pod in the load");
        wait_until(&format!("{n} more routes end on each pod"), bound, || {
            let done = goals
                .iter()
                .all(|(ended, goal)| ended.load(Ordering::SeqCst) >= *goal);
            async move { done }
        })
        .await;
    }

    /// Stops every pod's loop; every sample, in no particular order.
    ///
    /// # Panics
    ///
    /// When a pod's loop panicked (its `JoinHandle` is an error), or is
    /// still stuck in a route 5 s after being told to stop.
    pub(crate) async fn stop(self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for (pod, task) in self.tasks {
            match tokio::time::timeout(Duration::from_secs(5), task).await {
                Ok(Ok(samples)) => all.extend(samples),
                Ok(Err(e)) => panic!("{pod}'s routing loop did not end cleanly: {e}"),
                Err(_) => panic!("{pod}'s routing loop is stuck in a route"),
            }
        }
        Samples(all)
    }
}

/// The routes of a load run.
#[derive(Debug)]
pub(crate) struct Samples(pub(crate) Vec<Sample>);

impl Samples {
    /// The slowest route of all.
    pub(crate) fn worst(&self) -> &Sample {
        self.0
            .iter()
            .max_by_key(|s| s.took)
            .expect("at least one route")
    }

    /// The routes that ran (at least partly) between `from` and `to`.
    pub(crate) fn during(&self, from: Instant, to: Instant) -> Vec<&Sample> {
        self.0
            .iter()
            .filter(|s| s.started < to && s.ended() > from)
            .collect()
    }

    /// The slowest route among `samples`, if any.
    pub(crate) fn slowest<'a>(samples: &[&'a Sample]) -> Option<&'a Sample> {
        samples.iter().copied().max_by_key(|s| s.took)
    }

    /// The routes begun while their pod was degraded and ended before `until`.
    pub(crate) fn degraded_before(&self, until: Instant) -> Vec<&Sample> {
        self.0
            .iter()
            .filter(|s| s.degraded && s.ended() <= until)
            .collect()
    }

    /// Routes that did not end served.
    pub(crate) fn failed(&self) -> Vec<&Sample> {
        self.0.iter().filter(|s| s.result.is_err()).collect()
    }
}

/// Asserts that no route took longer than [`ROUTE_BOUND`] and every route
/// was served, naming the offender.
pub(crate) fn assert_routes_bounded_and_served(samples: &Samples, what: &str) {
    let worst = samples.worst();
    assert!(
        worst.took <= ROUTE_BOUND,
        "{what}: a route took {:?} on {} (degraded at its start: {}), over the \
         {ROUTE_BOUND:?} bound (3 x the {TIMEOUT:?} timeout + 50 ms); it ended {:?}, \
         passing over [{}]",
        worst.took,
        worst.pod,
        worst.degraded,
        worst.result,
        worst.passed_over
    );
    let failed = samples.failed();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} routes were not served, e.g. {:?}",
        failed.len(),
        samples.0.len(),
        failed.first().map(|s| &s.result)
    );
}

/// Asserts that routes begun while their pod was degraded, and ended before
/// `until`, took under [`DEGRADED_ROUTE_BOUND`].
pub(crate) fn assert_degraded_routes_fast(samples: &Samples, until: Instant, what: &str) {
    let degraded = samples.degraded_before(until);
    assert!(
        !degraded.is_empty(),
        "{what}: no route ran while its pod was degraded"
    );
    let slowest = Samples::slowest(&degraded).expect("not empty");
    let over = degraded
        .iter()
        .filter(|s| s.took >= DEGRADED_ROUTE_BOUND)
        .count();
    assert!(
        slowest.took < DEGRADED_ROUTE_BOUND,
        "{what}: {over} of {} routes on degraded pods took {DEGRADED_ROUTE_BOUND:?} or more; \
         degraded mode should cost no store call. The slowest, on {}, took {:?}; it ended \
         {:?}, passing over [{}]",
        degraded.len(),
        slowest.pod,
        slowest.took,
        slowest.result,
        slowest.passed_over
    );
}
