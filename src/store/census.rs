//! [`Census`]: the fleet's counts without reading every agent.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::agent_id::AgentId;
use crate::model::{CircuitState, Snapshot};

/// How many agents a store knows and which of them are not closed, read
/// without reading every agent ([`BreakerStore::census`](super::BreakerStore::census)).
///
/// On Redis: `SCARD` of the agents set and the census hash
/// `PREFIX:not_closed`, which the scripts keep as they save a state (see
/// "Census" in `lua/lib.lua`). A force whose TTL has passed counts as
/// closed, as the next read of the agent would find it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Agents the store knows, plus the named agents it does not.
    pub total: u64,
    /// Every agent whose circuit is not closed, with its state.
    pub not_closed: BTreeMap<AgentId, CircuitState>,
    /// Agents whose stored state was found corrupt (by a script refusing
    /// it, or a read); counted in `total`, not in `not_closed`.
    pub corrupt: BTreeSet<AgentId>,
}

/// A census field's value, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A state other than closed.
    State(CircuitState),
    /// A corrupt stored state.
    Corrupt,
}

impl Census {
    /// The census of a store held in one process: every agent of `agents`
    /// and of `named`, each state as a read at `now_ms` would find it.
    #[must_use]
    pub fn of_snapshots(
        agents: &HashMap<AgentId, Snapshot>,
        named: &[AgentId],
        now_ms: u64,
    ) -> Self {
        let unknown_named = named.iter().filter(|a| !agents.contains_key(*a)).count();
        let not_closed = agents
            .iter()
            .filter_map(|(agent, s)| {
                let forced = matches!(
                    s.state,
                    CircuitState::ForcedOpen | CircuitState::ForcedClosed
                );
                let ended = forced && s.forced_until_ms.is_some_and(|until| now_ms >= until);
                (s.state != CircuitState::Closed && !ended).then(|| (agent.clone(), s.state))
            })
            .collect();
        Self {
            total: (agents.len() + unknown_named) as u64,
            not_closed,
            corrupt: BTreeSet::new(),
        }
    }

    /// A census field's value (`open`, `half_open`, `forced_open UNTIL_MS`,
    /// `corrupt`, ...): `Ok(None)` for a force past its end at `now_ms`,
    /// `Err(())` for text that is no state.
    pub(crate) fn parse_entry(raw: &[u8], now_ms: u64) -> Result<Option<Entry>, ()> {
        let text = std::str::from_utf8(raw).map_err(|_| ())?;
        if text == "corrupt" {
            return Ok(Some(Entry::Corrupt));
        }
        let (state, until) = match text.split_once(' ') {
            Some((state, until)) => (state, Some(until.parse::<u64>().map_err(|_| ())?)),
            None => (text, None),
        };
        let state: CircuitState = state.parse().map_err(|_| ())?;
        if state == CircuitState::Closed {
            return Err(());
        }
        Ok(match until {
            Some(until) if now_ms >= until => None,
            _ => Some(Entry::State(state)),
        })
    }

    /// Agents whose circuit is open or forced open.
    #[must_use]
    pub fn open(&self) -> usize {
        self.count(|s| matches!(s, CircuitState::Open | CircuitState::ForcedOpen))
    }

    /// Agents whose circuit is half-open.
    #[must_use]
    pub fn half_open(&self) -> usize {
        self.count(|s| s == CircuitState::HalfOpen)
    }

    fn count(&self, f: impl Fn(CircuitState) -> bool) -> usize {
        self.not_closed.values().filter(|&&s| f(s)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_as_its_state_and_a_force_past_its_end_as_closed() {
        let state = |s| Ok(Some(Entry::State(s)));
        assert_eq!(Census::parse_entry(b"open", 5), state(CircuitState::Open));
        assert_eq!(
            Census::parse_entry(b"half_open", 5),
            state(CircuitState::HalfOpen)
        );
        assert_eq!(
            Census::parse_entry(b"forced_open 10", 9),
            state(CircuitState::ForcedOpen)
        );
        assert_eq!(Census::parse_entry(b"forced_open 10", 10), Ok(None));
        assert_eq!(
            Census::parse_entry(b"forced_closed", 10),
            state(CircuitState::ForcedClosed)
        );
        assert_eq!(
            Census::parse_entry(b"corrupt", 10),
            Ok(Some(Entry::Corrupt))
        );
        for bad in [
            &b"closed"[..],
            b"banana",
            b"open x",
            b"",
            b"open  1",
            b"\xff",
        ] {
            assert_eq!(Census::parse_entry(bad, 0), Err(()), "{bad:?}");
        }
    }
}
