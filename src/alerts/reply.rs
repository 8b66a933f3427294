//! Reading the replies of the stream commands from [`Value`], leniently
//! (like `watch/replay.rs`): one odd entry is skipped as malformed instead
//! of failing a whole read.

use std::time::Duration;

use redis::Value;

use super::stream::{Entry, Pending};

/// An `XREADGROUP` reply for one stream: nil, or `[[key, entries]]` (RESP2),
/// or `{key: entries}` (RESP3).
pub(super) fn parse_read(reply: Value) -> Vec<Entry> {
    let entries = match reply {
        Value::Array(streams) => streams.into_iter().find_map(|stream| match stream {
            Value::Array(pair) => pair.into_iter().nth(1),
            _ => None,
        }),
        Value::Map(streams) => streams.into_iter().next().map(|(_, entries)| entries),
        _ => None,
    };
    match entries {
        Some(Value::Array(entries)) => entries.into_iter().filter_map(parse_entry).collect(),
        _ => Vec::new(),
    }
}

/// `[id, [field, value, ...]]`; `None` without a readable id (nothing
/// could acknowledge it anyway).
pub(super) fn parse_entry(entry: Value) -> Option<Entry> {
    let Value::Array(parts) = entry else {
        return None;
    };
    let mut parts = parts.into_iter();
    let id = text(parts.next()?)?;
    let msg = parts.next().and_then(msg_field);
    Some(Entry { id, msg })
}

/// `[[id, consumer, idle_ms, deliveries], ...]`; odd rows are dropped.
pub(super) fn parse_pending(reply: Value) -> Vec<Pending> {
    let Value::Array(rows) = reply else {
        return Vec::new();
    };
    rows.into_iter()
        .filter_map(|row| {
            let Value::Array(cells) = row else {
                return None;
            };
            let mut cells = cells.into_iter();
            let id = text(cells.next()?)?;
            let consumer = text(cells.next()?)?;
            let idle = integer(&cells.next()?)?;
            let deliveries = integer(&cells.next()?)?;
            Some(Pending {
                id,
                consumer,
                idle: Duration::from_millis(idle),
                deliveries,
            })
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

fn integer(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => std::str::from_utf8(bytes(other)?).ok()?.parse().ok(),
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
    fn read_replies_keep_entries_without_msg_as_malformed() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("p:transitions"),
            Value::Array(vec![
                entry("1-0", &["msg", "{}"]),
                entry("2-0", &["other", "x"]),
                Value::Array(vec![Value::Int(3)]),
                Value::Nil,
            ]),
        ])]);
        let entries = parse_read(reply);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].msg.as_deref(), Some(&b"{}"[..]));
        assert_eq!(
            entries[1],
            Entry {
                id: "2-0".into(),
                msg: None
            }
        );
        let map = Value::Map(vec![(
            bulk("k"),
            Value::Array(vec![entry("5-1", &["msg", "x"])]),
        )]);
        assert_eq!(parse_read(map).len(), 1);
        assert!(parse_read(Value::Nil).is_empty());
    }

    #[test]
    fn pending_rows_are_read_and_odd_ones_dropped() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk("1-0"),
                bulk("pod-a"),
                Value::Int(1500),
                Value::Int(2),
            ]),
            Value::Array(vec![bulk("2-0"), bulk("pod-b")]),
            Value::Int(7),
        ]);
        assert_eq!(
            parse_pending(reply),
            [Pending {
                id: "1-0".into(),
                consumer: "pod-a".into(),
                idle: Duration::from_millis(1500),
                deliveries: 2,
            }]
        );
    }
}
