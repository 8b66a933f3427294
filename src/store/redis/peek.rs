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

use super::RedisStore;
use super::scripts::{self, Call};
use crate::agent_id::AgentId;
use crate::config::BreakerConfig;
use crate::model::{self, CircuitState, Lease, Snapshot};
use crate::store::{Corruption, StoreError};

/// Agents per pipeline (or, on a cluster, single commands in flight).
const PIPELINE: usize = 1000;

/// Pipelines in flight: Redis answers one while the client parses another.
const PIPELINES_IN_FLIGHT: usize = 4;

/// Census repairs in flight.
const FIXES_IN_FLIGHT: usize = 256;

/// The census field of a corrupt agent.
const CORRUPT: &str = "corrupt";

/// A state hash as read, or the type of a key that is not a hash.
/// The stored fields of [`FIELDS`] then `epoch` (`None`: missing), or the
/// type of a key that is not a hash.
type Hash = Result<Fields, String>;

/// The stored values of [`FIELDS`] then `epoch`, as `HMGET` gives them.
type Fields = Vec<Option<Vec<u8>>>;

const EXPECTED_STATE: &str = "closed, open, half_open, forced_open or forced_closed";
const EXPECTED_UINT: &str = "an integer from 0 to 2^53 - 1";
const EXPECTED_U32: &str = "an integer from 0 to 2^32 - 1";
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// The hash fields, in the order `lua/lib.lua`'s FIELDS checks them.
const FIELDS: [&str; 11] = [
    "state",
    "failure_count",
    "success_count",
    "total_rejections",
    "last_failure_ms",
    "last_success_ms",
    "backoff_ms",
    "open_until_ms",
    "half_open_successes",
    "generation",
    "forced_until_ms",
];

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
        let call = Call {
            keys: vec![
                self.keys().state(agent),
                self.keys().probes(agent),
                self.keys().not_closed(),
            ],
            args: vec![agent.as_str().to_owned()],
        };
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
                }
                let replies: Vec<::redis::RedisResult<Fields>> = self
                    .inner
                    .lanes
                    .pipeline(&pipeline, "HMGET replies")
                    .await?;
                let mut hashes = Vec::with_capacity(chunk.len());
                for (agent, reply) in chunk.iter().zip(replies) {
                    hashes.push(match reply {
                        Ok(hash) => Ok(hash),
                        Err(error) if error.code() == Some("WRONGTYPE") => {
                            Err(self.key_type(&self.keys().state(agent)).await)
                        }
                        Err(error) => {
                            return Err(StoreError::Command(format!("HMGET reply: {error}")));
                        }
                    });
                }
                Ok(hashes)
            })
            .buffered(PIPELINES_IN_FLIGHT)
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

    /// Whether `key` exists.
    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let n: u64 = self
            .query(::redis::cmd("EXISTS").arg(key), "EXISTS reply")
            .await?;
        Ok(n == 1)
    }

    /// The state hash of `agent`, or the type of a key that is not a hash.
    async fn hash(&self, agent: &AgentId) -> Result<Hash, StoreError> {
        let key = self.keys().state(agent);
        match self.query::<Fields>(&hmget(&key), "HMGET reply").await {
            Ok(hash) => Ok(Ok(hash)),
            Err(StoreError::Command(message)) if message.contains("WRONGTYPE") => {
                Ok(Err(self.key_type(&key).await))
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

/// The first corrupt field: its name, its value (`None`: missing) and
/// what was expected.
type Bad = (&'static str, Option<String>, &'static str);

/// The census field a stored snapshot calls for, as `census_entry` of
/// `lua/lib.lua` writes it: `None` for closed.
fn census_entry(s: &Snapshot) -> Option<String> {
    match (s.state, s.forced_until_ms) {
        (CircuitState::Closed, _) => None,
        (CircuitState::ForcedOpen | CircuitState::ForcedClosed, Some(until)) => {
            Some(format!("{} {until}", s.state.as_str()))
        }
        (state, _) => Some(state.as_str().to_owned()),
    }
}

/// `HMGET` of [`FIELDS`] then `epoch` from the hash at `key`.
fn hmget(key: &str) -> ::redis::Cmd {
    let mut cmd = ::redis::cmd("HMGET");
    cmd.arg(key).arg(&FIELDS[..]).arg("epoch");
    cmd
}

/// A stored hash as `load.lua` reads it, fields checked in FIELDS order,
/// then the epoch.
fn parse(hash: &[Option<Vec<u8>>]) -> Result<Snapshot, Bad> {
    let mut numbers = [0_u64; 11];
    let mut state = CircuitState::Closed;
    for (i, field) in FIELDS.iter().enumerate() {
        let raw = hash.get(i).and_then(Option::as_ref);
        let bad = |expected| (*field, raw.map(|r| printable(r)), expected);
        if i == 0 {
            state = raw
                .and_then(|r| std::str::from_utf8(r).ok())
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| bad(EXPECTED_STATE))?;
            continue;
        }
        let n = raw
            .and_then(|r| lua_uint(r))
            .ok_or_else(|| bad(EXPECTED_UINT))?;
        if *field == "half_open_successes" && n > u64::from(u32::MAX) {
            return Err(bad(EXPECTED_U32));
        }
        numbers[i] = n;
    }
    let epoch = match hash.get(FIELDS.len()).and_then(Option::as_ref) {
        None => 0,
        Some(raw) => lua_uint(raw).ok_or_else(|| ("epoch", Some(printable(raw)), EXPECTED_UINT))?,
    };
    let some = |n: u64| (n != 0).then_some(n);
    Ok(Snapshot {
        state,
        failure_count: numbers[1],
        success_count: numbers[2],
        total_rejections: numbers[3],
        last_failure_ms: some(numbers[4]),
        last_success_ms: some(numbers[5]),
        backoff_ms: numbers[6],
        open_until_ms: numbers[7],
        half_open_successes: u32::try_from(numbers[8]).unwrap_or(u32::MAX),
        generation: numbers[9],
        forced_until_ms: some(numbers[10]),
        probes: Vec::new(),
        epoch,
    })
}

/// Stored text as the scripts' `to_uint` reads it: Lua's `tonumber`
/// (C `strtod`: surrounding white space, a sign, an exponent, `0x` hex),
/// then a whole number from 0 to 2^53 - 1.
fn lua_uint(raw: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(raw).ok()?;
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let n = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let n = u64::from_str_radix(hex, 16).map_or(f64::INFINITY, |n| n as f64);
        n
    } else {
        // Rust's float syntax is C's without hex, and it also takes "inf"
        // and "nan", which fail the checks below as in Lua.
        if digits.starts_with(['+', '-']) {
            return None;
        }
        digits.parse::<f64>().ok()?
    };
    let n = if negative { -n } else { n };
    let whole = (0.0..MAX_EXACT).contains(&n) && n.fract() == 0.0;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    whole.then_some(n as u64)
}

/// A stored value for an error, as `load.lua`'s `printable`: its first 64
/// bytes, each outside printable ASCII as `\xNN`.
fn printable(raw: &[u8]) -> String {
    raw.iter()
        .take(64)
        .map(|&b| {
            if (32..=126).contains(&b) {
                char::from(b).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_the_scripts_read_them() {
        for (text, n) in [
            ("0", Some(0)),
            ("42", Some(42)),
            (" 42 ", Some(42)),
            ("1e3", Some(1000)),
            ("+7", Some(7)),
            ("-0", Some(0)),
            ("0x10", Some(16)),
            ("9007199254740991", Some(9_007_199_254_740_991)),
            ("9007199254740992", None),
            ("-1", None),
            ("1.5", None),
            ("inf", None),
            ("nan", None),
            ("banana", None),
            ("", None),
            ("0x", None),
            ("--1", None),
            ("1e", None),
        ] {
            assert_eq!(lua_uint(text.as_bytes()), n, "{text:?}");
        }
    }

    #[test]
    fn a_value_prints_its_first_64_bytes_escaping_the_rest_of_ascii() {
        assert_eq!(printable(b"ok"), "ok");
        assert_eq!(printable(b"a\xffb\n"), "a\\xffb\\x0a");
        assert_eq!(printable(&[b'x'; 100]).len(), 64);
    }

    #[test]
    fn the_first_corrupt_field_in_order_is_named() {
        let at = |field: &str| FIELDS.iter().position(|f| *f == field).unwrap();
        let mut hash: Fields = vec![Some(b"0".to_vec()); FIELDS.len() + 1];
        hash[0] = Some(b"closed".to_vec());
        assert!(parse(&hash).is_ok());
        hash[at("generation")] = Some(b"x".to_vec());
        hash[at("success_count")] = None;
        assert_eq!(
            parse(&hash).unwrap_err(),
            ("success_count", None, EXPECTED_UINT)
        );
        hash[at("success_count")] = Some(b"1".to_vec());
        assert_eq!(
            parse(&hash).unwrap_err(),
            ("generation", Some("x".to_owned()), EXPECTED_UINT)
        );
        hash[at("generation")] = Some(b"1".to_vec());
        hash[at("half_open_successes")] = Some(b"4294967296".to_vec());
        assert_eq!(parse(&hash).unwrap_err().2, EXPECTED_U32);
        hash[at("half_open_successes")] = Some(b"0".to_vec());
        hash[FIELDS.len()] = Some(b"-1".to_vec());
        assert_eq!(parse(&hash).unwrap_err().0, "epoch");
    }
}
