//! Many agents read at once without a script: `HMGET` of each state hash
//! (pipelined, 1,000 to a round trip, on one Redis; single commands many in
//! flight on a cluster) and `ZRANGE` of the probes of a half-open one,
//! checked and refreshed here as `lua/load.lua` and `model::refresh` would,
//! and nothing written.
//!
//! A snapshot script costs Redis 10 to 20 µs (it runs the whole prelude);
//! an `HMGET` about 1 µs, so a listing of 100,000 agents is bounded by the
//! client, not by Redis's one thread.
//!
//! ## Behavior
//!
//! - Each agent comes back as the snapshot script would answer it, minus
//!   the writes: lapsed leases dropped and a force past its TTL ended in the
//!   answer only (the next script on the agent does both, and publishes).
//! - A hash that does not exist is an unknown agent (`None`); a field that
//!   `load.lua` would refuse is [`StoreError::Corrupt`] naming the same
//!   field, value and expectation, in the same order of fields; a key of
//!   another type is corrupt `type`.
//! - Numbers are read as the scripts' `tonumber` reads them (surrounding
//!   spaces, an exponent, a sign or `0x` hex are accepted when the value is
//!   a whole number from 0 to 2^53 - 1).

use std::collections::HashMap;

use futures::StreamExt;

mod parse;

use super::RedisStore;
use super::conn::command_error;
use super::scripts::{self, Call};
use crate::agent_id::AgentId;
use crate::config::BreakerConfig;
use crate::model::{self, CircuitState, Lease, Snapshot};
use crate::store::{Corruption, StoreError};
use parse::{Fields, census_entry, hmget, lua_uint, parse, printable};

/// Agents per pipeline (or, on a cluster, single commands in flight).
const PIPELINE: usize = 1000;

/// Pipelines in flight: Redis answers one while the client parses another.
const PIPELINES_IN_FLIGHT: usize = 4;

/// Census repairs in flight.
const FIXES_IN_FLIGHT: usize = 256;

/// The census field of a corrupt agent.
const CORRUPT: &str = "corrupt";

/// The stored fields of [`FIELDS`] then `epoch`, `window` and `reporters`
/// (`None`: missing), or the type of a key that is not a hash; then the
/// config hash as `HGETALL` gives it (name, value, ...), or its type.
type Hash = (Result<Fields, String>, Result<Fields, String>);

/// One agent as read: unknown, its snapshot, or corrupt.
pub(super) type Peeked = Result<Option<Snapshot>, StoreError>;

impl RedisStore {
    /// Reads `agents` (see the [module docs](self)), in their order.
    pub(super) async fn peek_many(
        &self,
        config: &BreakerConfig,
        agents: &[AgentId],
    ) -> Result<Vec<Peeked>, StoreError> {
        let now_ms = match &self.inner.clock_override {
            Some(clock) => clock.now_ms(),
            None => self.server_time_ms().await?,
        };
        let census = self.census_entries().await?;
        let mut peeked = Vec::with_capacity(agents.len());
        let mut apart = Vec::new();
        let hashes = self.hashes(agents);
        futures::pin_mut!(hashes);
        let mut agents = agents.iter();
        while let Some(chunk) = hashes.next().await {
            for hash in chunk? {
                let agent = agents.next().expect("one hash per agent");
                let (read, stored) = self.interpret(config, agent, hash, now_ms).await?;
                if let Some(stored) = stored
                    && census.get(agent.as_str().as_bytes()).map(Vec::as_slice)
                        != stored.as_ref().map(String::as_bytes)
                {
                    apart.push((agent, stored));
                }
                peeked.push(read);
            }
        }
        for chunk in apart.chunks(FIXES_IN_FLIGHT) {
            let fixes = chunk
                .iter()
                .map(|(agent, entry)| self.fix_census(agent, entry.as_deref()));
            futures::future::join_all(fixes).await;
        }
        Ok(peeked)
    }

    /// The census hash as it is: agent id -> value.
    async fn census_entries(&self) -> Result<HashMap<Vec<u8>, Vec<u8>>, StoreError> {
        self.query(
            ::redis::cmd("HGETALL").arg(self.keys().not_closed()),
            "census hash",
        )
        .await
    }

    /// Puts `agent`'s census field right, a read having found it apart
    /// from the state (`entry`: what the state says it should be). On one
    /// Redis a script does it from the state itself, atomically; on a
    /// cluster (the census in another slot) the store writes `entry`.
    async fn fix_census(&self, agent: &AgentId, entry: Option<&str>) {
        if self.is_cluster() {
            let entry = entry.unwrap_or("-");
            super::cluster::census_write(self, agent, entry.as_bytes()).await;
            return;
        }
        let keys = vec![
            self.keys().state(agent),
            self.keys().probes(agent),
            self.keys().not_closed(),
        ];
        let call = Call::census(keys, agent);
        if let Err(error) = self.inner.lanes.eval(&scripts::CENSUS, &call, agent).await {
            tracing::warn!(%agent, %error, "the census field of the agent could not be put right; the next read tries again");
        }
    }

    /// The state hashes of `agents`, in order, a chunk at a time: on one
    /// Redis a pipeline per chunk (one round trip, one reply to parse),
    /// a few in flight; on a cluster single commands, many in flight (a
    /// cluster pipeline must stay within one slot).
    fn hashes<'a>(
        &'a self,
        agents: &'a [AgentId],
    ) -> impl futures::Stream<Item = Result<Vec<Hash>, StoreError>> + 'a {
        futures::stream::iter(agents.chunks(PIPELINE))
            .map(move |chunk| async move {
                if self.is_cluster() {
                    let reads = chunk.iter().map(|agent| self.hash(agent));
                    return futures::future::try_join_all(reads).await;
                }
                let mut pipeline = ::redis::pipe();
                pipeline.ignore_errors();
                for agent in chunk {
                    pipeline.add_command(hmget(&self.keys().state(agent)));
                    pipeline.add_command(hgetall(&self.keys().config(agent)));
                }
                let replies: Vec<::redis::RedisResult<Fields>> = self
                    .inner
                    .lanes
                    .pipeline(&pipeline, "HMGET replies")
                    .await?;
                let mut hashes = Vec::with_capacity(chunk.len());
                let mut replies = replies.into_iter();
                for agent in chunk {
                    let (Some(state), Some(config)) = (replies.next(), replies.next()) else {
                        return Err(StoreError::InvalidData {
                            what: "HMGET replies".to_owned(),
                            detail: "fewer replies than commands".to_owned(),
                        });
                    };
                    let state = self.typed(state, &self.keys().state(agent)).await?;
                    let config = self.typed(config, &self.keys().config(agent)).await?;
                    hashes.push((state, config));
                }
                Ok(hashes)
            })
            .buffered(PIPELINES_IN_FLIGHT)
    }

    /// A reply of a hash command: its fields, or the type of a key that
    /// is not a hash.
    async fn typed(
        &self,
        reply: ::redis::RedisResult<Fields>,
        key: &str,
    ) -> Result<Result<Fields, String>, StoreError> {
        match reply {
            Ok(fields) => Ok(Ok(fields)),
            Err(error) if error.code() == Some("WRONGTYPE") => Ok(Err(self.key_type(key).await)),
            Err(error) => Err(command_error(&error, "HMGET reply")),
        }
    }

    /// One agent read, and the census field its stored state calls for
    /// (`corrupt` for a corrupt one); the outer error when Redis fails, the
    /// inner one when its state is corrupt.
    async fn interpret(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        hash: Hash,
        now_ms: u64,
    ) -> Result<(Peeked, Option<Option<String>>), StoreError> {
        let key = self.keys().state(agent);
        let (hash, stored_settings) = hash;
        let hash = match hash {
            Err(kind) => {
                let error = corrupt(agent, &key, "type", Some(kind), "a hash");
                return Ok((Err(error), Some(Some(CORRUPT.to_owned()))));
            }
            Ok(hash) => hash,
        };
        // As load.lua: no state, failure count or generation may be no hash.
        if [0, 1, 9]
            .iter()
            .all(|&i| hash.get(i).is_none_or(Option::is_none))
            && !self.exists(&key).await?
        {
            return Ok((Ok(None), Some(None)));
        }
        let mut snapshot = match parse(&hash) {
            Ok(snapshot) => snapshot,
            Err((field, value, expected)) => {
                return Ok((
                    Err(corrupt(agent, &key, field, value, expected)),
                    Some(Some(CORRUPT.to_owned())),
                ));
            }
        };
        match settings(stored_settings) {
            Ok(settings) => snapshot.settings = settings,
            Err((field, value, expected)) => {
                let key = self.keys().config(agent);
                let error = corrupt(agent, &key, &field, value, &expected);
                return Ok((Err(error), Some(Some(CORRUPT.to_owned()))));
            }
        }
        if snapshot.state == CircuitState::HalfOpen {
            let key = self.keys().probes(agent);
            match self.leases(&key).await? {
                Ok(leases) => snapshot.probes = leases,
                Err((value, expected)) => {
                    let error = corrupt(agent, &key, "probes", Some(value), expected);
                    return Ok((Err(error), Some(Some(CORRUPT.to_owned()))));
                }
            }
        }
        let entry = census_entry(&snapshot);
        // In the answer only: the next script writes and publishes it.
        let _ = model::refresh(&mut snapshot, config, agent, now_ms);
        Ok((Ok(Some(snapshot)), Some(entry)))
    }

    /// The state and config hashes of `agent` (each, or the type of a key
    /// that is not a hash).
    async fn hash(&self, agent: &AgentId) -> Result<Hash, StoreError> {
        let state = self.keys().state(agent);
        let config = self.keys().config(agent);
        Ok((
            self.one_hash(&hmget(&state), &state).await?,
            self.one_hash(&hgetall(&config), &config).await?,
        ))
    }

    async fn one_hash(
        &self,
        cmd: &::redis::Cmd,
        key: &str,
    ) -> Result<Result<Fields, String>, StoreError> {
        match self.query::<Fields>(cmd, "HMGET reply").await {
            Ok(hash) => Ok(Ok(hash)),
            Err(StoreError::Command(message)) if message.contains("WRONGTYPE") => {
                Ok(Err(self.key_type(key).await))
            }
            Err(error) => Err(error),
        }
    }

    /// The probe leases at `key`, ordered by (deadline, id) as `ZRANGE`
    /// gives them; or the value and expectation of the corrupt part.
    async fn leases(
        &self,
        key: &str,
    ) -> Result<Result<Vec<Lease>, (String, &'static str)>, StoreError> {
        let mut cmd = ::redis::cmd("ZRANGE");
        cmd.arg(key).arg(0).arg(-1).arg("WITHSCORES");
        let raw: Vec<Vec<u8>> = match self.query(&cmd, "ZRANGE reply").await {
            Ok(raw) => raw,
            Err(StoreError::Command(message)) if message.contains("WRONGTYPE") => {
                return Ok(Err((self.key_type(key).await, "a sorted set")));
            }
            Err(error) => return Err(error),
        };
        let mut leases = Vec::with_capacity(raw.len() / 2);
        for pair in raw.chunks(2) {
            let [id, score] = pair else { break };
            let Some(deadline_ms) = lua_uint(score) else {
                return Ok(Err((
                    printable(score),
                    "lease deadlines, an integer from 0 to 2^53 - 1",
                )));
            };
            leases.push(Lease {
                permit_id: String::from_utf8_lossy(id).into_owned(),
                deadline_ms,
            });
        }
        Ok(Ok(leases))
    }

    /// The type of `key`, for an error, as `load.lua` names it.
    async fn key_type(&self, key: &str) -> String {
        self.query::<String>(::redis::cmd("TYPE").arg(key), "TYPE reply")
            .await
            .unwrap_or_else(|_| "not the type expected".to_owned())
    }
}

/// `HGETALL` of the agent's config hash.
fn hgetall(key: &str) -> ::redis::Cmd {
    let mut cmd = ::redis::cmd("HGETALL");
    cmd.arg(key);
    cmd
}

/// The settings from the config hash's reply, checked as `load.lua` does;
/// a key of another type is corrupt like a bad value.
fn settings(
    config: Result<Fields, String>,
) -> Result<crate::config::AgentSettings, super::stored::BadSetting> {
    let flat = config.map_err(|kind| ("type".to_owned(), Some(kind), "a hash".to_owned()))?;
    let text = |raw: &Option<Vec<u8>>| {
        String::from_utf8_lossy(raw.as_deref().unwrap_or_default()).into_owned()
    };
    let pairs: Vec<(String, String)> = flat
        .chunks(2)
        .map(|pair| (text(&pair[0]), pair.get(1).map(text).unwrap_or_default()))
        .collect();
    super::stored::parse_settings(&pairs)
}

fn corrupt(
    agent: &AgentId,
    key: &str,
    field: &str,
    value: Option<String>,
    expected: &str,
) -> StoreError {
    StoreError::Corrupt {
        agent: agent.clone(),
        corruption: Corruption {
            key: key.to_owned(),
            field: field.to_owned(),
            value,
            expected: expected.to_owned(),
        },
    }
}
