//! `GET /api/circuit-breaker/health` with parameters: the agents listed
//! filtered by state and paged by agent id, or only the counts; from the
//! store's census when it has one and the question allows (the counts, a
//! page of open, half-open or corrupt agents: see [`census`](super::census)), else
//! from the shared read (see [`snapshot`](super::snapshot)).
//!
//! ## Behavior
//!
//! - Without parameters the answer is the [`HealthStatus`] JSON of the
//!   original specification, byte for byte the shared read's.
//! - `state=S[,S...]` (`open`, `half_open`, `closed`, `corrupt`; `open`
//!   includes forced open, `closed` forced closed) keeps the agents in one
//!   of those states; `after=AGENT` those whose id sorts after AGENT;
//!   `limit=N` (1 to [`MAX_HEALTH_LIMIT`]) the first N of them. The counts
//!   stay the fleet's; `"next"` is the id to pass as `after` for the next
//!   page, or `null` on the last one.
//! - `agents=none` (or `/health/summary`) answers the counts alone.
//! - Any other parameter, or a bad value, is a 400 naming the parameter and
//!   what it accepts.

use std::collections::HashMap;
use std::ops::Bound;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::ApiError;
use super::census::CensusPage;
use crate::agent_id::AgentId;
use crate::breaker::AgentMetrics;
use crate::model::CircuitState;
use crate::router::{HealthStatus, HealthSummary};

/// The largest `limit` of a health listing.
pub const MAX_HEALTH_LIMIT: usize = 10_000;

/// A state filter of `?state=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StateFilter {
    Open,
    HalfOpen,
    Closed,
    Corrupt,
}

impl StateFilter {
    const ACCEPTED: &'static str = "open, half_open, closed, corrupt (comma-separated)";

    fn parse(raw: &str) -> Option<Self> {
        Some(match raw.trim() {
            "open" => Self::Open,
            "half_open" => Self::HalfOpen,
            "closed" => Self::Closed,
            "corrupt" => Self::Corrupt,
            _ => return None,
        })
    }

    pub(super) fn matches(self, metrics: &AgentMetrics) -> bool {
        if metrics.is_corrupt() {
            return self == Self::Corrupt;
        }
        self.admits(metrics.state)
    }

    /// Whether an agent in `state` (not corrupt) is in this filter.
    pub(super) fn admits(self, state: CircuitState) -> bool {
        match self {
            Self::Open => matches!(state, CircuitState::Open | CircuitState::ForcedOpen),
            Self::HalfOpen => state == CircuitState::HalfOpen,
            Self::Closed => state.admits_all(),
            Self::Corrupt => false,
        }
    }
}

/// What a health request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Listing {
    /// No parameters: the original shape.
    Everything,
    /// The counts only.
    Summary,
    /// A page of the agents.
    Page {
        /// Empty: every state.
        states: Vec<StateFilter>,
        after: Option<AgentId>,
        limit: Option<usize>,
    },
}

impl Listing {
    /// The listing the query string's `params` ask for.
    ///
    /// # Errors
    ///
    /// A 400 naming the parameter and what it accepts.
    pub(super) fn parse(params: &HashMap<String, String>) -> Result<Self, ApiError> {
        if params.is_empty() {
            return Ok(Self::Everything);
        }
        let mut states = Vec::new();
        let mut after = None;
        let mut limit = None;
        let mut summary = false;
        for (name, value) in params {
            match name.as_str() {
                "state" => {
                    for raw in value.split(',') {
                        let state = StateFilter::parse(raw).ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "state: {raw:?} is not a state; accepted: {}",
                                StateFilter::ACCEPTED
                            ))
                        })?;
                        if !states.contains(&state) {
                            states.push(state);
                        }
                    }
                }
                "after" => {
                    after = Some(AgentId::new(value).map_err(|e| {
                        ApiError::bad_request(format!(
                            "after: expected an agent id (the previous page's \"next\"): {e}"
                        ))
                    })?);
                }
                "limit" => {
                    limit = Some(
                        value
                            .trim()
                            .parse::<usize>()
                            .ok()
                            .filter(|n| (1..=MAX_HEALTH_LIMIT).contains(n))
                            .ok_or_else(|| {
                                ApiError::bad_request(format!(
                                    "limit: expected a whole number from 1 to {MAX_HEALTH_LIMIT}"
                                ))
                            })?,
                    );
                }
                "agents" if value == "none" => summary = true,
                "agents" => {
                    return Err(ApiError::bad_request(
                        "agents: only \"none\" is accepted (the counts alone)",
                    ));
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown parameter {other:?}; accepted: state, limit, after, agents=none"
                    )));
                }
            }
        }
        if summary {
            if states.is_empty() && after.is_none() && limit.is_none() {
                return Ok(Self::Summary);
            }
            return Err(ApiError::bad_request(
                "agents=none answers the counts alone: it takes no state, limit or after",
            ));
        }
        Ok(Self::Page {
            states,
            after,
            limit,
        })
    }
}

/// One page of a filtered listing, borrowed from a read.
#[derive(Debug, Serialize)]
pub(super) struct Page<'a> {
    #[serde(flatten)]
    summary: HealthSummary,
    agents: Agents<'a>,
    /// The `after` of the next page; `None` on the last.
    next: Option<&'a AgentId>,
}

/// The agents of a page, serialized as a JSON object by id.
#[derive(Debug)]
struct Agents<'a>(Vec<(&'a AgentId, &'a AgentMetrics)>);

impl Serialize for Agents<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (id, metrics) in &self.0 {
            map.serialize_entry(id, metrics)?;
        }
        map.end()
    }
}

/// The page of `status` that `states`, `after` and `limit` select (see
/// the [module docs](self)).
pub(super) fn page<'a>(
    status: &'a HealthStatus,
    states: &[StateFilter],
    after: Option<&AgentId>,
    limit: Option<usize>,
) -> Page<'a> {
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let matching = status
        .agents
        .range((start, Bound::Unbounded))
        .filter(|(_, m)| states.is_empty() || states.iter().any(|s| s.matches(m)));
    page_of(status.summary(), matching, limit, false)
}

/// A page of the census (see [`census`](super::census)): `agents` all
/// match; `more` when candidates remain after them.
pub(super) fn census_page(page: &CensusPage) -> Page<'_> {
    page_of(page.summary.clone(), page.agents.iter(), None, page.more)
}

/// The first `limit` of `matching`; `next` when more match, or `more`.
fn page_of<'a>(
    summary: HealthSummary,
    mut matching: impl Iterator<Item = (&'a AgentId, &'a AgentMetrics)>,
    limit: Option<usize>,
    more: bool,
) -> Page<'a> {
    let agents: Vec<_> = matching
        .by_ref()
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let next = if more || matching.next().is_some() {
        agents.last().map(|(id, _)| *id)
    } else {
        None
    };
    Page {
        summary,
        agents: Agents(agents),
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &[(&str, &str)]) -> Result<Listing, ApiError> {
        let params = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Listing::parse(&params)
    }

    #[test]
    fn parameters_parse_and_bad_ones_name_themselves() {
        assert_eq!(parse(&[]).unwrap(), Listing::Everything);
        assert_eq!(parse(&[("agents", "none")]).unwrap(), Listing::Summary);
        assert_eq!(
            parse(&[
                ("state", "open,half_open"),
                ("limit", "5"),
                ("after", "a-1")
            ])
            .unwrap(),
            Listing::Page {
                states: vec![StateFilter::Open, StateFilter::HalfOpen],
                after: Some(AgentId::new("a-1").unwrap()),
                limit: Some(5),
            }
        );
        for (query, named, accepted) in [
            (vec![("state", "opened")], "state", "half_open"),
            (vec![("state", "open,")], "state", "corrupt"),
            (vec![("limit", "0")], "limit", "10000"),
            (vec![("limit", "10001")], "limit", "10000"),
            (vec![("limit", "x")], "limit", "10000"),
            (vec![("after", "")], "after", "agent id"),
            (vec![("agents", "all")], "agents", "none"),
            (
                vec![("agents", "none"), ("limit", "3")],
                "agents=none",
                "counts",
            ),
            (vec![("page", "2")], "page", "after"),
        ] {
            let error = parse(&query).unwrap_err();
            assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST);
            assert!(
                error.message().contains(named),
                "{query:?}: {}",
                error.message()
            );
            assert!(
                error.message().contains(accepted),
                "{query:?}: {}",
                error.message()
            );
        }
    }
}
