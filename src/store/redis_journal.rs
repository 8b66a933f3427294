//! [`RoutingJournal`] for [`RedisStore`]: fleet-wide, in two keys.
//!
//! - `PREFIX:failures`, a stream capped with `XADD MAXLEN ~ cap`; each entry
//!   has the fields `task_id`, `agent_id`, `reason`, `time_ms`, `instance_id`.
//!   Read newest first with `XREVRANGE ... COUNT limit`.
//! - `PREFIX:routing_events`, an integer string key grown with `INCRBY`.
//!
//! Neither key carries an agent hash tag: each is one key, so each command
//! touches one cluster slot anyway. Only the store's public accessors are
//! used (`pool`, `keys`, `timeout`), and every command is bounded by the
//! store's timeout.

use async_trait::async_trait;
use redis::FromRedisValue;
use redis::streams::{StreamId, StreamRangeReply};

use super::StoreError;
use super::journal::{FailureRecord, RoutingJournal};
use super::redis::RedisStore;
use crate::agent_id::AgentId;

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

    async fn recent_failures(&self, limit: usize) -> Result<Vec<FailureRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(self.keys().failures())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit);
        let reply: StreamRangeReply = run(self, &cmd).await?;
        reply.ids.iter().map(parse).collect()
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
}
