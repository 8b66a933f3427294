//! Stream replies read by hand from [`Value`], leniently: one odd entry (a
//! field name that is not UTF-8, a missing `msg`, a short row) is skipped
//! or kept as malformed instead of failing the whole read. Shared by the
//! watcher's replay of `PREFIX:transitions` and the webhooks' consumer
//! groups on the same stream.

use redis::Value;

/// One stream entry: its id, and its `msg` field where it has one as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) msg: Option<Vec<u8>>,
}

/// An `XREAD` or `XREADGROUP` reply for one stream: nil, or
/// `[[key, entries]]` (RESP2), or `{key: entries}` (RESP3).
pub(crate) fn parse_read(reply: Value) -> Vec<Entry> {
    let entries = match reply {
        Value::Array(streams) => streams.into_iter().find_map(|stream| match stream {
            Value::Array(pair) => pair.into_iter().nth(1),
            _ => None,
        }),
        Value::Map(streams) => streams.into_iter().next().map(|(_, entries)| entries),
        _ => None,
    };
    entries.map(parse_entries).unwrap_or_default()
}

/// `[[id, [field, value, ...]], ...]` (`XRANGE`, `XREVRANGE`, one stream of
/// `XREAD`); entries without a readable id are dropped (nothing could
/// resume after, or acknowledge, them anyway).
pub(crate) fn parse_entries(reply: Value) -> Vec<Entry> {
    match reply {
        Value::Array(entries) => entries.into_iter().filter_map(parse_entry).collect(),
        _ => Vec::new(),
    }
}

/// `[id, [field, value, ...]]`; `None` without a readable id.
pub(crate) fn parse_entry(entry: Value) -> Option<Entry> {
    let Value::Array(parts) = entry else {
        return None;
    };
    let mut parts = parts.into_iter();
    let id = text(parts.next()?)?;
    let msg = parts.next().and_then(msg_field);
    Some(Entry { id, msg })
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

/// A bulk or simple string's bytes.
pub(crate) fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// A bulk or simple string as UTF-8 text.
pub(crate) fn text(value: Value) -> Option<String> {
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
    fn read_replies_keep_entries_without_msg_as_malformed() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("p:transitions"),
            Value::Array(vec![
                entry("1-0", &["msg", "{}"]),
                entry("2-0", &["other", "x"]),
                Value::Array(vec![Value::Int(3)]),
                entry("4-0", &["a", "b", "msg", "m"]),
                Value::Nil,
            ]),
        ])]);
        let entries = parse_read(reply);
        let ids: Vec<_> = entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["1-0", "2-0", "4-0"]);
        assert_eq!(entries[0].msg.as_deref(), Some(&b"{}"[..]));
        assert_eq!(
            entries[1],
            Entry {
                id: "2-0".into(),
                msg: None
            }
        );
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
