//! What the store writes itself after a script on a Redis Cluster: the keys
//! that span agents (`PREFIX:agents`, `PREFIX:transitions`,
//! `PREFIX:not_closed`) live in other slots than the agent's, which a
//! script there may not touch.

use ::redis::Value;

use super::RedisStore;
use crate::agent_id::AgentId;

/// Strips the `created` and `census` items a script appends on a cluster
/// (see `lua/lib.lua`), then adds a created agent to `PREFIX:agents`,
/// appends a transition to `PREFIX:transitions` and writes the agent's
/// census field, all at once. Their failures are logged and swallowed: the
/// script's change is done and published, and failing the call would only
/// make the caller lose what it was granted.
pub(super) async fn after_script(store: &RedisStore, value: Value, agent: &AgentId) -> Value {
    let Value::Array(mut items) = value else {
        // nil: an unknown agent, nothing written.
        return value;
    };
    let census = match items.pop() {
        Some(Value::BulkString(entry)) if !entry.is_empty() => Some(entry),
        _ => None,
    };
    let created = matches!(items.pop(), Some(Value::Int(1)));
    let transition = match items.get(1) {
        Some(Value::BulkString(json)) if !json.is_empty() => Some(json.clone()),
        _ => None,
    };
    let keys = store.keys();
    let register = async {
        if created {
            let mut cmd = ::redis::cmd("SADD");
            cmd.arg(keys.agents()).arg(agent.as_str());
            if let Err(error) = store.query::<i64>(&cmd, "SADD reply").await {
                tracing::warn!(
                    %agent, %error,
                    "cluster: a new agent is not in the agents set (SADD after the script failed)"
                );
            }
        }
    };
    let append = async {
        if let Some(json) = &transition {
            let mut cmd = ::redis::cmd("XADD");
            cmd.arg(keys.transitions())
                .arg("MAXLEN")
                .arg("~")
                .arg(store.inner.transitions_max_len)
                .arg("*")
                .arg("msg")
                .arg(json.as_slice());
            if let Err(error) = store.query::<String>(&cmd, "XADD reply").await {
                tracing::warn!(
                    %agent, %error,
                    "cluster: a transition is missing from the transitions stream (XADD after \
                     the script failed); live watchers had it by pub/sub"
                );
            }
        }
    };
    let count = async {
        if let Some(entry) = &census {
            census_write(store, agent, entry).await;
        }
    };
    tokio::join!(register, append, count);
    Value::Array(items)
}

/// Sets the agent's census field to `entry`, or deletes it for `-`.
pub(super) async fn census_write(store: &RedisStore, agent: &AgentId, entry: &[u8]) {
    let mut cmd = if entry == b"-" {
        ::redis::cmd("HDEL")
    } else {
        ::redis::cmd("HSET")
    };
    cmd.arg(store.keys().not_closed()).arg(agent.as_str());
    if entry != b"-" {
        cmd.arg(entry);
    }
    if let Err(error) = store.query::<i64>(&cmd, "census reply").await {
        tracing::warn!(
            %agent, %error,
            "cluster: the fleet's counts miss a change of this agent (the census write after \
             the script failed); its next transition or read repairs it"
        );
    }
}
