//! The commands a (re)connection runs on a plain connection: `INFO server`
//! for the server's `run_id`, and the reads of the transitions stream.
//!
//! Stream replies are parsed by hand from [`Value`], leniently, so that one
//! odd entry (a field name that is not UTF-8, a missing `msg`) is skipped as
//! malformed instead of failing the whole page and, with it, every replay.

use redis::Value;
use redis::aio::ConnectionLike;

/// The id before every stream entry.
pub(super) const START: &str = "0-0";

/// Entries asked for per `XREAD`.
pub(super) const PAGE: usize = 512;

/// One stream entry: its id, and its `msg` field where it has one as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) id: String,
    pub(super) msg: Option<Vec<u8>>,
}

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

/// An `XREAD` reply for one stream: nil, or `[[key, entries]]` (RESP2), or
/// `{key: entries}` (RESP3).
fn parse_read(reply: Value) -> Vec<Entry> {
    match reply {
        Value::Array(streams) => streams
            .into_iter()
            .find_map(|stream| match stream {
                Value::Array(pair) => pair.into_iter().nth(1),
                _ => None,
            })
            .map(parse_entries)
            .unwrap_or_default(),
        Value::Map(streams) => streams
            .into_iter()
            .next()
            .map(|(_, entries)| parse_entries(entries))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// `[[id, [field, value, ...]], ...]`; entries without a readable id are
/// dropped (nothing could resume after them anyway).
fn parse_entries(reply: Value) -> Vec<Entry> {
    let Value::Array(entries) = reply else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| {
            let Value::Array(parts) = entry else {
                return None;
            };
            let mut parts = parts.into_iter();
            let id = text(parts.next()?)?;
            let msg = parts.next().and_then(msg_field);
            Some(Entry { id, msg })
        })
        .collect()
}

/// The value of the `msg` field of `[field, value, ...]` (or a RESP3 map).
fn msg_field(fields: Value) -> Option<Vec<u8>> {
    let pairs: Vec<(Value, Value)> = match fields {
        Value::Array(flat) => {
            let mut flat = flat.into_iter();
            std::iter::from_fn(|| Some((flat.next()?, flat.next()?))).collect()
        }
        Value::Map(pairs) => pairs,
        _ => return None,
    };
    pairs
        .into_iter()
        .find(|(field, _)| bytes(field).is_some_and(|f| f == b"msg"))
        .and_then(|(_, value)| bytes(&value).map(<[u8]>::to_vec))
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
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

    #[test]
    fn xread_replies_keep_entries_without_msg_as_malformed() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("p:transitions"),
            Value::Array(vec![
                entry("1-0", &["msg", "{}"]),
                entry("2-0", &["other", "x"]),
                Value::Array(vec![Value::Int(3)]),
                entry("4-0", &["a", "b", "msg", "m"]),
            ]),
        ])]);
        let entries = parse_read(reply);
        let ids: Vec<_> = entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["1-0", "2-0", "4-0"]);
        assert_eq!(entries[0].msg.as_deref(), Some(&b"{}"[..]));
        assert_eq!(entries[1].msg, None);
        assert_eq!(entries[2].msg.as_deref(), Some(&b"m"[..]));
    }

    #[test]
    fn resp3_and_nil_replies_are_read() {
        let map = Value::Map(vec![(
            bulk("k"),
            Value::Array(vec![entry("5-1", &["msg", "x"])]),
        )]);
        assert_eq!(parse_read(map).len(), 1);
        assert!(parse_read(Value::Nil).is_empty());
    }
}
