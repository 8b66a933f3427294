//! The fleet's agents without one big read: the agents set paged with
//! `SSCAN`, the counts from `SCARD` and the census hash
//! (`PREFIX:not_closed`, kept by the scripts: see "Census" in
//! `lua/lib.lua`), and the sweep of agents whose keys expired for idleness.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::RedisStore;
use crate::agent_id::AgentId;
use crate::config::BreakerConfig;
use crate::store::census::Entry;
use crate::store::{Census, StoreError};

/// Members of the agents set asked for per `SSCAN` page: each page is one
/// command bounded by the store's timeout, so a set of 100,000 agents is
/// read in 100 short commands, not one that outlasts it.
const SCAN_PAGE: usize = 1000;

/// Commands of one sweep in flight at once (pipelined on the connection).
const SWEEP_IN_FLIGHT: usize = 256;

/// The longest pause between two sweeps of one fleet.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

impl RedisStore {
    /// Every member of the agents set, page by page, as valid agent ids
    /// (others are skipped with a warning), sorted.
    pub(super) async fn scan_agents(&self) -> Result<Vec<AgentId>, StoreError> {
        let key = self.keys().agents();
        let mut agents = Vec::new();
        let mut cursor = 0_u64;
        loop {
            let mut cmd = ::redis::cmd("SSCAN");
            cmd.arg(&key).arg(cursor).arg("COUNT").arg(SCAN_PAGE);
            let (next, members): (u64, Vec<Vec<u8>>) = self.query(&cmd, "agents set").await?;
            agents.extend(members.iter().filter_map(|member| valid_id(&key, member)));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SSCAN may return a member twice (the set was rehashed meanwhile).
        agents.sort();
        agents.dedup();
        Ok(agents)
    }

    /// The counts and the agents not closed: `TIME`, `SCARD`, `SMISMEMBER`
    /// of the named agents and `HGETALL` of the census, concurrently (one
    /// round trip's wait, pipelined on the connection).
    pub(super) async fn read_census(&self, named: &[AgentId]) -> Result<Census, StoreError> {
        let keys = self.keys();
        // The clock a force's end is judged by, read beside the rest.
        let now_ms = async {
            match &self.inner.clock_override {
                Some(clock) => Ok(clock.now_ms()),
                None => self.server_time_ms().await,
            }
        };
        let count = async {
            self.query::<u64>(::redis::cmd("SCARD").arg(keys.agents()), "agents set size")
                .await
        };
        let unknown_named = async {
            if named.is_empty() {
                return Ok(0);
            }
            let mut cmd = ::redis::cmd("SMISMEMBER");
            cmd.arg(keys.agents());
            for agent in named {
                cmd.arg(agent.as_str());
            }
            let known: Vec<u8> = self.query(&cmd, "agents set membership").await?;
            Ok::<_, StoreError>(known.iter().filter(|&&k| k == 0).count() as u64)
        };
        let entries = async {
            self.query::<Vec<(Vec<u8>, Vec<u8>)>>(
                ::redis::cmd("HGETALL").arg(keys.not_closed()),
                "census hash",
            )
            .await
        };
        let (now_ms, count, unknown_named, entries) =
            tokio::join!(now_ms, count, unknown_named, entries);
        let now_ms = now_ms?;
        let key = keys.not_closed();
        let mut not_closed = BTreeMap::new();
        let mut corrupt = BTreeSet::new();
        for (field, value) in entries? {
            let Some(agent) = valid_id(&key, &field) else {
                continue;
            };
            match Census::parse_entry(&value, now_ms) {
                Ok(Some(Entry::State(state))) => {
                    not_closed.insert(agent, state);
                }
                Ok(Some(Entry::Corrupt)) => {
                    corrupt.insert(agent);
                }
                Ok(None) => {}
                Err(()) => tracing::warn!(
                    key = %key, %agent, value = %String::from_utf8_lossy(&value),
                    "skipping a census field that is not a state; the agent's next read repairs it"
                ),
            }
        }
        Ok(Census {
            total: count? + unknown_named?,
            not_closed,
            corrupt,
        })
    }

    /// One sweep of the agents set, by at most one pod of the fleet per
    /// interval (a lease, `SET NX PX`): each member whose state hash is gone
    /// (expired for idleness, see `idle_ttl`) leaves the set and the census.
    /// A member created again meanwhile (its hash back between the check
    /// and the removal) is put back.
    pub(super) async fn sweep(&self, config: &BreakerConfig) -> Result<u64, StoreError> {
        let Some(idle_ttl) = config.idle_ttl else {
            return Ok(0);
        };
        let interval = idle_ttl.min(MAX_SWEEP_INTERVAL);
        let mut lease = ::redis::cmd("SET");
        lease
            .arg(self.keys().sweep_lease())
            .arg(uuid::Uuid::new_v4().to_string())
            .arg("NX")
            .arg("PX")
            .arg(crate::config::duration_ms(interval));
        let taken: Option<String> = self.query(&lease, "sweep lease").await?;
        if taken.is_none() {
            return Ok(0);
        }
        let agents = self.scan_agents().await?;
        let mut removed = 0;
        // In chunks: many commands in flight (pipelined), a bounded number.
        for chunk in agents.chunks(SWEEP_IN_FLIGHT) {
            let exists =
                futures::future::join_all(chunk.iter().map(|agent| self.state_exists(agent))).await;
            let mut gone = Vec::new();
            for (agent, exists) in chunk.iter().zip(exists) {
                if !exists? {
                    gone.push(agent);
                }
            }
            for forgotten in
                futures::future::join_all(gone.into_iter().map(|a| self.forget(a))).await
            {
                removed += u64::from(forgotten?);
            }
        }
        Ok(removed)
    }

    /// Redis `TIME` in ms: the clock the scripts decide by.
    pub(super) async fn server_time_ms(&self) -> Result<u64, StoreError> {
        let (secs, micros): (u64, u64) = self.query(&::redis::cmd("TIME"), "TIME reply").await?;
        Ok(secs.saturating_mul(1000).saturating_add(micros / 1000))
    }

    /// Whether `key` exists.
    pub(super) async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let n: u64 = self
            .query(::redis::cmd("EXISTS").arg(key), "EXISTS reply")
            .await?;
        Ok(n == 1)
    }

    /// Whether `agent`'s state hash exists.
    async fn state_exists(&self, agent: &AgentId) -> Result<bool, StoreError> {
        self.exists(&self.keys().state(agent)).await
    }

    /// Removes `agent` from the set and the census, then puts it back in
    /// the set if its hash came back meanwhile; whether it stayed removed.
    async fn forget(&self, agent: &AgentId) -> Result<bool, StoreError> {
        let keys = self.keys();
        let _: u64 = self
            .query(
                ::redis::cmd("SREM").arg(keys.agents()).arg(agent.as_str()),
                "SREM reply",
            )
            .await?;
        let _: u64 = self
            .query(
                ::redis::cmd("HDEL")
                    .arg(keys.not_closed())
                    .arg(agent.as_str()),
                "HDEL reply",
            )
            .await?;
        if self.state_exists(agent).await? {
            let _: u64 = self
                .query(
                    ::redis::cmd("SADD").arg(keys.agents()).arg(agent.as_str()),
                    "SADD reply",
                )
                .await?;
            return Ok(false);
        }
        Ok(true)
    }
}

/// A member of `key` as an agent id, or `None` (with a warning) when it is
/// not a valid one.
fn valid_id(key: &str, member: &[u8]) -> Option<AgentId> {
    let id = std::str::from_utf8(member)
        .ok()
        .and_then(|text| AgentId::new(text).ok());
    if id.is_none() {
        tracing::warn!(
            key = %key,
            member = %String::from_utf8_lossy(member),
            "skipping a member that is not a valid agent id"
        );
    }
    id
}
