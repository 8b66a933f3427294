//! What the routes answer from the store's census (see
//! [`FailoverRouter::census`](crate::router::FailoverRouter::census))
//! instead of reading every agent: the counts, a page of open or half-open
//! agents, and the agents `/metrics` reports by default.
//!
//! ## Behavior
//!
//! - The counts: the census's.
//! - A page of `state=open`, `half_open` and/or `corrupt`: the census's
//!   candidates after the cursor, read fresh in batches of what the page
//!   still lacks, each kept only if its fresh state matches (a census field
//!   can trail a transition by one script); `next` when candidates remain.
//! - Without a census (a store that cannot count cheaply, or degraded
//!   mode) each of these answers `None` and the caller reads every agent.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::num::NonZeroUsize;
use std::ops::Bound;

use super::listing::StateFilter;
use super::{ApiError, AppState};
use crate::agent_id::AgentId;
use crate::breaker::AgentMetrics;
use crate::router::HealthSummary;

/// A page read through the census.
#[derive(Debug)]
pub(super) struct CensusPage {
    pub(super) summary: HealthSummary,
    pub(super) agents: BTreeMap<AgentId, AgentMetrics>,
    /// Candidates remain after the last agent of the page.
    pub(super) more: bool,
}

/// The agents `/metrics` reports per agent by default, and the counts.
#[derive(Debug)]
pub(super) struct NotClosed {
    pub(super) summary: HealthSummary,
    /// The agents selected, read fresh.
    pub(super) agents: BTreeMap<AgentId, AgentMetrics>,
}

impl AppState {
    /// The fleet's counts from the census; `None` without one.
    pub(super) async fn census_summary(&self) -> Result<Option<HealthSummary>, ApiError> {
        Ok(self.router().census().await?.map(|census| census.summary))
    }

    /// A page of agents in `states` (open, half-open and/or corrupt) after
    /// `after`, at most `limit`; `None` without a census or for `closed`.
    pub(super) async fn census_page(
        &self,
        states: &[StateFilter],
        after: Option<&AgentId>,
        limit: Option<usize>,
    ) -> Result<Option<CensusPage>, ApiError> {
        let in_census = !states.is_empty() && !states.contains(&StateFilter::Closed);
        if !in_census {
            return Ok(None);
        }
        let Some(census) = self.router().census().await? else {
            return Ok(None);
        };
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let wants_corrupt = states.contains(&StateFilter::Corrupt);
        let mut candidates: BTreeSet<AgentId> = census
            .not_closed
            .range((start, Bound::Unbounded))
            .filter(|&(_, &state)| states.iter().any(|f| f.admits(state)))
            .map(|(agent, _)| agent.clone())
            .collect();
        if wants_corrupt {
            candidates.extend(census.corrupt.range((start, Bound::Unbounded)).cloned());
        }
        let mut candidates: VecDeque<AgentId> = candidates.into_iter().collect();
        let limit = limit.unwrap_or(usize::MAX);
        let mut agents = BTreeMap::new();
        while agents.len() < limit && !candidates.is_empty() {
            let wanted = (limit - agents.len()).min(candidates.len());
            let batch: Vec<AgentId> = candidates.drain(..wanted).collect();
            let read = self.router().agents_health(batch).await?;
            agents.extend(
                read.into_iter()
                    .filter(|(_, m)| states.iter().any(|f| f.matches(m))),
            );
        }
        Ok(Some(CensusPage {
            summary: census.summary,
            agents,
            more: !candidates.is_empty(),
        }))
    }

    /// The agents `/metrics` reports per agent, read fresh, and the
    /// counts; `None` without a census. The agents whose circuit does not
    /// admit every call (open, forced open, half-open) or whose state is
    /// corrupt, in id order; with a `limit`, at most that many, then closed
    /// agents in id order up to it (their names from the agents set, read
    /// only when the tripped ones are fewer than the limit).
    pub(super) async fn census_metrics(
        &self,
        limit: Option<NonZeroUsize>,
    ) -> Result<Option<NotClosed>, ApiError> {
        let Some(census) = self.router().census().await? else {
            return Ok(None);
        };
        let mut tripped: BTreeSet<AgentId> = census
            .not_closed
            .into_iter()
            .filter(|(_, state)| !state.admits_all())
            .map(|(agent, _)| agent)
            .collect();
        tripped.extend(census.corrupt);
        let mut selected: Vec<AgentId> = tripped.iter().cloned().collect();
        if let Some(limit) = limit {
            selected.truncate(limit.get());
            let room = limit.get() - selected.len();
            if room > 0 {
                let names = self.router().agent_names().await?;
                selected.extend(
                    names
                        .into_iter()
                        .filter(|agent| !tripped.contains(agent))
                        .take(room),
                );
            }
        }
        let agents = self.router().agents_health(selected).await?;
        Ok(Some(NotClosed {
            summary: census.summary,
            agents,
        }))
    }
}
