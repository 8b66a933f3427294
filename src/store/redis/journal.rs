//! [`RoutingJournal`] for [`RedisStore`]: fleet-wide, in two keys.
//!
//! - `PREFIX:failures`, a stream capped with `XADD MAXLEN ~ cap`; each entry
//!   has the fields `task_id`, `agent_id`, `reason`, `time_ms`, `instance_id`.
//!   Read newest first with `XREVRANGE ... COUNT limit`; an entry that is
//!   not a failure record (written by something else, or by hand) is
//!   skipped and counted, never an error.
//! - `PREFIX:routing_events`, an integer string key grown with `INCRBY`.
//!
//! Neither key carries an agent hash tag: each is one key, so each command
//! touches one cluster slot anyway. Only the store's public accessors are
//! used (`pool`, `keys`, `timeout`), and every command is bounded by the
//! store's timeout.

use async_trait::async_trait;
use redis::FromRedisValue;
use redis::streams::{StreamId, StreamRangeReply};

use super::RedisStore;
use crate::agent_id::AgentId;
use crate::store::StoreError;
use crate::store::journal::{FailureRecord, RoutingJournal};

/// The most `XREVRANGE` pages one read of recent failures makes when
/// malformed entries leave a page short.
const MAX_PAGES: usize = 4;

/// The counter key: `PREFIX:routing_events`.
fn routing_events_key(store: &RedisStore) -> String {
    store.keys().routing_events()
}

/// Runs `cmd` on the store's connections, bounded by its timeout, with the
/// store's error mapping.
async fn run<T: FromRedisValue>(store: &RedisStore, cmd: &redis::Cmd) -> Result<T, StoreError> {
    store.query(cmd, "journal command").await
}

fn invalid(entry: &StreamId, detail: impl Into<String>) -> StoreError {
    StoreError::InvalidData {
        what: format!("failures stream entry {}", entry.id),
        detail: detail.into(),
    }
}

fn field<T: FromRedisValue>(entry: &StreamId, name: &str) -> Result<T, StoreError> {
    entry
        .get(name)
        .ok_or_else(|| invalid(entry, format!("field `{name}` is missing or unreadable")))
}

fn parse(entry: &StreamId) -> Result<FailureRecord, StoreError> {
    let agent: String = field(entry, "agent_id")?;
    Ok(FailureRecord {
        task_id: field(entry, "task_id")?,
        agent_id: AgentId::new(&agent).map_err(|e| invalid(entry, e.to_string()))?,
        reason: field(entry, "reason")?,
        time_ms: field(entry, "time_ms")?,
        instance_id: field(entry, "instance_id")?,
    })
}

#[async_trait]
impl RoutingJournal for RedisStore {
    async fn push_failure(&self, record: &FailureRecord, cap: usize) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.keys().failures())
            .arg("MAXLEN")
            .arg("~")
            .arg(cap)
            .arg("*")
            .arg("task_id")
            .arg(&record.task_id)
            .arg("agent_id")
            .arg(record.agent_id.as_str())
            .arg("reason")
            .arg(&record.reason)
            .arg("time_ms")
            .arg(record.time_ms)
            .arg("instance_id")
            .arg(&record.instance_id);
        run::<String>(self, &cmd).await.map(drop)
    }

    /// Newest first, in pages of `XREVRANGE`: a malformed entry is skipped
    /// (logged, and counted in [`failures_skipped`](RoutingJournal::failures_skipped))
    /// and the next page fills its place, up to 4 round trips.
    async fn recent_failures(&self, limit: usize) -> Result<Vec<FailureRecord>, StoreError> {
        let mut records = Vec::with_capacity(limit.min(1_024));
        // The newest entry not read yet: "+", then the last id read, which
        // the next page repeats first (an exclusive start, `(id`, needs
        // Redis 6.2).
        let mut end: Option<String> = None;
        let mut skipped: Vec<StoreError> = Vec::new();
        for _ in 0..MAX_PAGES {
            let wanted = limit - records.len();
            if wanted == 0 {
                break;
            }
            let mut cmd = redis::cmd("XREVRANGE");
            cmd.arg(self.keys().failures())
                .arg(end.as_deref().unwrap_or("+"))
                .arg("-")
                .arg("COUNT")
                .arg(wanted + usize::from(end.is_some()));
            let reply: StreamRangeReply = run(self, &cmd).await?;
            let page = reply.ids.len();
            let mut new = 0;
            for entry in &reply.ids {
                if end.as_deref() == Some(entry.id.as_str()) {
                    continue;
                }
                new += 1;
                match parse(entry) {
                    Ok(record) => records.push(record),
                    Err(error) => skipped.push(error),
                }
            }
            if new < wanted || page == 0 {
                break; // the start of the stream
            }
            end = reply.ids.last().map(|entry| entry.id.clone());
        }
        if let Some(first) = skipped.first() {
            self.count_failures_skipped(u64::try_from(skipped.len()).unwrap_or(u64::MAX));
            tracing::warn!(
                skipped = skipped.len(),
                error = %first,
                key = %self.keys().failures(),
                "recent failures: skipped malformed entries of the failures stream"
            );
        }
        records.truncate(limit);
        Ok(records)
    }

    async fn add_routing_events(&self, n: u64) -> Result<u64, StoreError> {
        let mut cmd = redis::cmd("INCRBY");
        cmd.arg(routing_events_key(self)).arg(n);
        run(self, &cmd).await
    }

    async fn routing_events(&self) -> Result<u64, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(routing_events_key(self));
        let total: Option<u64> = run(self, &cmd).await?;
        Ok(total.unwrap_or(0))
    }

    fn failures_skipped(&self) -> u64 {
        self.failures_skipped_so_far()
    }
}
