//! The commands a (re)connection runs on a plain connection: `INFO server`
//! for the server's `run_id`, and the reads of the transitions stream.
//!
//! Stream replies are read leniently (`entries.rs`), so that one odd entry
//! is skipped as malformed instead of failing the whole page and, with it,
//! every replay.

use redis::Value;
use redis::aio::ConnectionLike;

pub(super) use super::entries::Entry;
use super::entries::{bytes, parse_entries, parse_read};

/// The id before every stream entry.
pub(super) const START: &str = "0-0";

/// Entries asked for per `XREAD`.
pub(super) const PAGE: usize = 512;

/// The server's `run_id` (`INFO server`): it changes when Redis restarts.
/// `Ok(None)` when the reply has no such line. On a cluster connection,
/// `INFO` goes to every master and the answer is their run ids, sorted and
/// joined: it changes when a master restarts or another node takes over.
pub(super) async fn run_id<C: ConnectionLike + Send>(
    conn: &mut C,
) -> redis::RedisResult<Option<String>> {
    let info: Value = redis::cmd("INFO").arg("server").query_async(conn).await?;
    Ok(run_id_of(&info))
}

/// The run id of one `INFO` reply, or of a cluster's map of replies.
fn run_id_of(info: &Value) -> Option<String> {
    match info {
        Value::Map(per_node) => {
            let mut ids: Vec<String> = per_node.iter().filter_map(|(_, v)| run_id_of(v)).collect();
            ids.sort();
            Some(ids.join(",")).filter(|ids| !ids.is_empty())
        }
        Value::VerbatimString { text, .. } => parse_run_id(text),
        other => bytes(other)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(parse_run_id),
    }
}

fn parse_run_id(info: &str) -> Option<String> {
    info.lines()
        .find_map(|line| line.trim().strip_prefix("run_id:"))
        .map(str::to_owned)
        .filter(|id| !id.is_empty())
}

/// The id of the newest entry of `key` (`XREVRANGE key + - COUNT 1`), or
/// [`START`] for an empty or missing stream.
pub(super) async fn tip<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
) -> redis::RedisResult<String> {
    let reply: Value = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(parse_entries(reply)
        .into_iter()
        .next()
        .map_or_else(|| START.to_owned(), |entry| entry.id))
}

/// Up to [`PAGE`] entries of `key` after `after`, exclusive (`XREAD COUNT
/// PAGE STREAMS key after`), oldest first.
pub(super) async fn read_after<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    after: &str,
) -> redis::RedisResult<Vec<Entry>> {
    let reply: Value = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(PAGE)
        .arg("STREAMS")
        .arg(key)
        .arg(after)
        .query_async(conn)
        .await?;
    Ok(parse_read(reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn run_id_is_read_from_the_info_text() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\ntcp_port:6390\r\n";
        assert_eq!(parse_run_id(info).as_deref(), Some("abc123"));
        assert_eq!(parse_run_id("# Server\r\n"), None);
        let cluster = Value::Map(vec![
            (bulk("b:2"), bulk("run_id:bbb\r\n")),
            (bulk("a:1"), bulk("run_id:aaa\r\n")),
        ]);
        assert_eq!(run_id_of(&cluster).as_deref(), Some("aaa,bbb"));
    }
}
