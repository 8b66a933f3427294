//! The peers, in-process breakers measured in the same run: recloser 1.x
//! (`Recloser::call`) and failsafe 1.x (`CircuitBreaker::call`), each on a
//! closed circuit (admit, run a call that succeeds, record the success) and
//! on an open one (reject).
//!
//! Their calls are synchronous and need no runtime, so criterion's plain
//! `iter` times them. Settings as close to fleet-breaker's as each allows:
//! failsafe opens after 5 consecutive failures (exponential backoff from
//! 1 s to 60 s); recloser has only a failure rate over a ring buffer and
//! keeps its defaults on the closed circuit. The open circuits are opened by
//! failed calls and wait an hour, so they stay open through the run.

use std::hint::black_box;
use std::time::Duration;

use criterion::BenchmarkGroup;
use criterion::measurement::WallTime;
use failsafe::CircuitBreaker as _;
use failsafe::backoff::{self, Exponential};
use failsafe::failure_policy::{self, ConsecutiveFailures};
use recloser::Recloser;

/// `recloser_closed_call`: `Recloser::call` of an `Ok` on a closed circuit.
pub(crate) const RECLOSER_CLOSED: &str = "recloser_closed_call";
/// `recloser_open_reject`: `Recloser::call` rejected by an open circuit.
pub(crate) const RECLOSER_OPEN: &str = "recloser_open_reject";
/// `failsafe_closed_call`: failsafe's `call` of an `Ok` on a closed circuit.
pub(crate) const FAILSAFE_CLOSED: &str = "failsafe_closed_call";
/// `failsafe_open_reject`: failsafe's `call` rejected by an open circuit.
pub(crate) const FAILSAFE_OPEN: &str = "failsafe_open_reject";

type Failsafe = failsafe::StateMachine<ConsecutiveFailures<Exponential>, ()>;

/// One closed and one open breaker of each peer.
pub(crate) struct Peers {
    recloser_closed: Recloser,
    recloser_open: Recloser,
    failsafe_closed: Failsafe,
    failsafe_open: Failsafe,
}

const HOUR: Duration = Duration::from_secs(3600);

fn failsafe(threshold: u32, start: Duration, max: Duration) -> Failsafe {
    failsafe::Config::new()
        .failure_policy(failure_policy::consecutive_failures(
            threshold,
            backoff::exponential(start, max),
        ))
        .build()
}

fn failing() -> Result<u64, ()> {
    Err(())
}

fn succeeding() -> Result<u64, ()> {
    Ok(black_box(1))
}

impl Peers {
    /// Builds the breakers and opens the open ones, checking each state.
    pub(crate) fn new() -> Self {
        let recloser_open = Recloser::custom().closed_len(1).open_wait(HOUR).build();
        // The ring buffer of one call fills, then the rate (1.0) trips it.
        for _ in 0..2 {
            let _ = recloser_open.call(failing);
        }
        assert!(
            matches!(
                recloser_open.call(succeeding),
                Err(recloser::Error::Rejected)
            ),
            "the recloser should be open"
        );
        let failsafe_open = failsafe(1, HOUR, HOUR);
        let _ = failsafe_open.call(failing);
        assert!(
            matches!(
                failsafe_open.call(succeeding),
                Err(failsafe::Error::Rejected)
            ),
            "the failsafe breaker should be open"
        );
        let peers = Self {
            recloser_closed: Recloser::default(),
            recloser_open,
            failsafe_closed: failsafe(5, Duration::from_secs(1), Duration::from_secs(60)),
            failsafe_open,
        };
        assert!(peers.recloser_closed.call(succeeding).is_ok());
        assert!(peers.failsafe_closed.call(succeeding).is_ok());
        peers
    }

    /// Registers the four peer benches in `group`.
    pub(crate) fn bench(&self, group: &mut BenchmarkGroup<'_, WallTime>) {
        group.bench_function(RECLOSER_CLOSED, |b| {
            b.iter(|| black_box(self.recloser_closed.call(succeeding)).is_ok());
        });
        group.bench_function(RECLOSER_OPEN, |b| {
            b.iter(|| black_box(self.recloser_open.call(succeeding)).is_err());
        });
        group.bench_function(FAILSAFE_CLOSED, |b| {
            b.iter(|| black_box(self.failsafe_closed.call(succeeding)).is_ok());
        });
        group.bench_function(FAILSAFE_OPEN, |b| {
            b.iter(|| black_box(self.failsafe_open.call(succeeding)).is_err());
        });
    }
}
