//! Reading the replies of the stream commands from [`Value`], leniently:
//! one odd row is skipped instead of failing a whole read. Entries are read
//! as the watcher's replay reads them (`watch/entries.rs`); this adds the
//! `XPENDING` rows.

use std::time::Duration;

use redis::Value;

use super::stream::Pending;
use crate::store::redis::watch::entries::{bytes, text};

/// `[[id, consumer, idle_ms, deliveries], ...]`; odd rows are dropped.
pub(crate) fn parse_pending(reply: Value) -> Vec<Pending> {
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
