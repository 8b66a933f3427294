//! The pure model held to DESIGN.md section 2, one file per area.
//!
//! Every test starts from a fresh circuit at [`T0`] and drives time by hand:
//! the model takes `now_ms` as an argument and reads no clock.

use super::{
    AcquireStep, CircuitState, Decision, ForceMode, Grant, Lease, Outcome, Report, Snapshot,
    Ticket, Transition, TransitionReason, Window, acquire, backoff_seconds, escalate_backoff,
    force, record, refresh, reset,
};
use crate::agent_id::AgentId;
use crate::config::{AgentSettings, BreakerConfig};

mod backoff;
mod closed;
mod forced;
mod generations;
mod half_open;
mod leases;
mod neutral;
mod open;
mod policies;
mod properties;
mod rejections;
mod reset;
mod transitions;

/// A start time in the same range as real epoch milliseconds.
const T0: u64 = 1_700_000_000_000;

/// The default probe lease (`recovery_timeout`), 30 s.
const LEASE_MS: u64 = 30_000;

fn agent_id() -> AgentId {
    AgentId::new("agent-1").expect("a valid agent id")
}

/// One agent's circuit, driven through the model's functions.
#[derive(Debug)]
struct Circuit {
    config: BreakerConfig,
    agent: AgentId,
    s: Snapshot,
    permits_issued: u64,
}

impl Circuit {
    /// A fresh circuit with the default configuration.
    fn new() -> Self {
        Self::with_config(BreakerConfig::default())
    }

    fn with_config(config: BreakerConfig) -> Self {
        Self {
            s: Snapshot::fresh(&config),
            config,
            agent: agent_id(),
            permits_issued: 0,
        }
    }

    /// Asks for a permit with a new permit id; returns the step and that id.
    fn acquire(&mut self, now_ms: u64) -> (AcquireStep, String) {
        self.permits_issued += 1;
        let permit_id = format!("permit-{}", self.permits_issued);
        let step = acquire(&mut self.s, &self.config, &self.agent, now_ms, &permit_id);
        (step, permit_id)
    }

    /// Acquires and expects a permit; returns the ticket its outcome carries.
    fn grant(&mut self, now_ms: u64) -> Ticket {
        let (step, permit_id) = self.acquire(now_ms);
        match step.decision {
            Decision::Granted(grant) => Ticket {
                permit_id,
                generation: grant.generation,
            },
            rejected @ Decision::Rejected { .. } => {
                panic!("expected a permit at {now_ms}, got {rejected:?}")
            }
        }
    }

    /// Acquires and expects a rejection; returns its state and `retry_after_ms`.
    fn reject(&mut self, now_ms: u64) -> (CircuitState, Option<u64>) {
        let (step, _) = self.acquire(now_ms);
        assert_eq!(step.transition, None, "a rejection causes no transition");
        match step.decision {
            Decision::Rejected {
                state,
                retry_after_ms,
            } => (state, retry_after_ms),
            granted @ Decision::Granted(_) => {
                panic!("expected a rejection at {now_ms}, got {granted:?}")
            }
        }
    }

    fn record(&mut self, now_ms: u64, ticket: &Ticket, outcome: Outcome) -> Option<Transition> {
        self.report(now_ms, ticket, &Report::of(outcome))
    }

    /// Records `report` for `ticket` at `now_ms`.
    fn report(&mut self, now_ms: u64, ticket: &Ticket, report: &Report<'_>) -> Option<Transition> {
        record(
            &mut self.s,
            &self.config,
            &self.agent,
            now_ms,
            ticket,
            report,
        )
    }

    /// A whole call at `now_ms`: acquire a permit, then record `outcome`.
    fn call(&mut self, now_ms: u64, outcome: Outcome) -> Option<Transition> {
        let ticket = self.grant(now_ms);
        self.record(now_ms, &ticket, outcome)
    }

    /// `failure_threshold` failed calls at `now_ms`: the last one opens.
    fn trip(&mut self, now_ms: u64) -> Transition {
        for _ in 1..self.config.failure_threshold {
            assert_eq!(self.call(now_ms, Outcome::Failure), None);
        }
        self.call(now_ms, Outcome::Failure)
            .expect("the threshold-th failure opens the circuit")
    }

    /// Waits out the backoff: the first acquire at `open_until` goes
    /// half-open and is granted the first probe. Returns its time and ticket.
    fn half_open(&mut self) -> (u64, Ticket) {
        assert_eq!(self.s.state, CircuitState::Open);
        let at = self.s.open_until_ms;
        let ticket = self.grant(at);
        assert_eq!(self.s.state, CircuitState::HalfOpen);
        (at, ticket)
    }

    fn reset(&mut self, now_ms: u64) -> Transition {
        reset(&mut self.s, &self.config, &self.agent, now_ms)
    }

    fn force(&mut self, now_ms: u64, mode: ForceMode, ttl_ms: Option<u64>) -> Transition {
        force(&mut self.s, &self.config, &self.agent, now_ms, mode, ttl_ms)
    }

    fn refresh(&mut self, now_ms: u64) -> Option<Transition> {
        refresh(&mut self.s, &self.config, &self.agent, now_ms)
    }
}

/// `s` with both outcome timestamps taken from `like`: what a stale or
/// lapsed outcome may change, and nothing else.
fn with_stamps_of(s: &Snapshot, like: &Snapshot) -> Snapshot {
    Snapshot {
        last_success_ms: like.last_success_ms,
        last_failure_ms: like.last_failure_ms,
        ..s.clone()
    }
}
