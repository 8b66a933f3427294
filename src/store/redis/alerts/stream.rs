//! The Redis commands of webhook delivery, on one connection (to one server
//! or to a cluster), each bounded by a timeout; their replies are read by
//! `reply.rs`.

use std::time::Duration;

use redis::Value;

use super::link::Conn;
use super::reply::parse_pending;
use crate::store::redis::watch::entries::{parse_entries, parse_entry, parse_read};

pub(crate) use crate::store::redis::watch::entries::Entry;

/// One pending delivery (`XPENDING` extended form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) id: String,
    pub(crate) consumer: String,
    pub(crate) idle: Duration,
    /// How many times it was handed to a consumer.
    pub(crate) deliveries: u64,
}

/// What an `XCLAIM` of one id gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Ours now.
    Claimed(Entry),
    /// Ours, but the entry was trimmed from the stream (Redis 6.2 answers
    /// nil for it): acknowledge it.
    Gone,
    /// Not ours: another consumer took or acknowledged it first (or Redis 7
    /// dropped a trimmed entry).
    Lost,
}

/// A dead letter's fields.
pub(crate) struct DeadLetter<'a> {
    pub(crate) url: &'a str,
    pub(crate) id: &'a str,
    pub(crate) msg: &'a [u8],
    pub(crate) tries: u64,
    pub(crate) error: &'a str,
}

/// One connection and the names it works on.
pub(crate) struct Group<'a> {
    pub(crate) conn: &'a mut Conn,
    pub(crate) key: &'a str,
    pub(crate) group: &'a str,
    pub(crate) consumer: &'a str,
    /// The bound on each command (a blocking read gets its block time more).
    pub(crate) timeout: Duration,
}

/// Runs `cmd`, bounded by `timeout`; errors are text for the log.
async fn run<T: redis::FromRedisValue>(
    conn: &mut Conn,
    cmd: &redis::Cmd,
    timeout: Duration,
    what: &str,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, cmd.query_async(conn)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {timeout:?}")),
    }
}

/// `XGROUP CREATE key group START MKSTREAM`; an existing group is kept as
/// is. `START` is `$` the first time (a new group starts at the stream's
/// end); when the group was made before (`resume_after`, the newest id
/// this consumer knows of) and is gone, see [`start_id`].
pub(crate) async fn create_group(
    conn: &mut Conn,
    key: &str,
    group: &str,
    resume_after: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    let start = match resume_after {
        Some(after) => start_id(conn, key, after, timeout).await?,
        None => "$".to_owned(),
    };
    let cmd = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(group)
        .arg(&start)
        .arg("MKSTREAM")
        .to_owned();
    match tokio::time::timeout(timeout, cmd.query_async::<Value>(conn)).await {
        Ok(Ok(_)) => {
            if resume_after.is_some() {
                tracing::info!(
                    stream = key,
                    group,
                    start,
                    "webhooks: consumer group made again"
                );
            }
            Ok(())
        }
        Ok(Err(e)) if e.code() == Some("BUSYGROUP") => Ok(()),
        Ok(Err(e)) => Err(format!("XGROUP CREATE {key} {group}: {e}")),
        Err(_) => Err(format!("XGROUP CREATE {key}: no answer within {timeout:?}")),
    }
}

/// Where a group that existed before starts again, should it be gone:
///
/// - the stream is missing or empty, or its oldest entry is newer than
///   `after` (the stream was flushed or deleted and written again since):
///   after `after`, so the transitions of the new stream (made while the
///   consumer had not yet noticed) are delivered, none lost;
/// - the stream still holds `after` or older entries (only the group was
///   destroyed): its end, `$`, as for a new group.
async fn start_id(
    conn: &mut Conn,
    key: &str,
    after: &str,
    timeout: Duration,
) -> Result<String, String> {
    // XREAD after 0-0 rather than XRANGE: the README's ACL line allows it.
    let cmd = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(key)
        .arg("0-0")
        .to_owned();
    let reply: Value = run(conn, &cmd, timeout, "XREAD").await?;
    let oldest = parse_read(reply).into_iter().next();
    let kept = oldest.is_some_and(|oldest| match (id_order(&oldest.id), id_order(after)) {
        (Some(oldest), Some(after)) => oldest <= after,
        _ => true,
    });
    Ok(if kept {
        "$".to_owned()
    } else {
        after.to_owned()
    })
}

/// A stream id `ms-seq` as a pair that orders as Redis orders ids.
pub(crate) fn id_order(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The id of the newest entry of `key`, or `0-0` when it has none.
pub(crate) async fn tip(conn: &mut Conn, key: &str, timeout: Duration) -> Result<String, String> {
    let cmd = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .to_owned();
    let reply: Value = run(conn, &cmd, timeout, "XREVRANGE").await?;
    Ok(parse_entries(reply)
        .into_iter()
        .next()
        .map_or_else(|| "0-0".to_owned(), |entry| entry.id))
}

impl Group<'_> {
    /// Up to `count` new entries for this consumer, waiting up to `block`
    /// for the first (`XREADGROUP ... BLOCK ... STREAMS key >`).
    pub(crate) async fn read_new(
        &mut self,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Entry>, String> {
        let block_ms = block.as_millis().clamp(1, u128::from(u32::MAX));
        let cmd = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(self.group)
            .arg(self.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block_ms.to_string())
            .arg("STREAMS")
            .arg(self.key)
            .arg(">")
            .to_owned();
        let reply: Value = run(self.conn, &cmd, self.timeout + block, "XREADGROUP").await?;
        Ok(parse_read(reply))
    }

    /// Up to `count` pending deliveries idle for at least `min_idle`,
    /// oldest id first (`XPENDING key group IDLE ms - + count`).
    pub(crate) async fn pending(
        &mut self,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Pending>, String> {
        let cmd = redis::cmd("XPENDING")
            .arg(self.key)
            .arg(self.group)
            .arg("IDLE")
            .arg(millis(min_idle))
            .arg("-")
            .arg("+")
            .arg(count)
            .to_owned();
        let reply: Value = run(self.conn, &cmd, self.timeout, "XPENDING").await?;
        Ok(parse_pending(reply))
    }

    /// How many deliveries this consumer holds.
    pub(crate) async fn own_pending(&mut self) -> Result<usize, String> {
        let cmd = redis::cmd("XPENDING")
            .arg(self.key)
            .arg(self.group)
            .arg("-")
            .arg("+")
            .arg(1)
            .arg(self.consumer)
            .to_owned();
        let reply: Value = run(self.conn, &cmd, self.timeout, "XPENDING").await?;
        Ok(parse_pending(reply).len())
    }

    /// Takes `id` if it has been idle for at least `min_idle` (`XCLAIM`),
    /// counting one more delivery.
    pub(crate) async fn claim(&mut self, id: &str, min_idle: Duration) -> Result<Claim, String> {
        let cmd = redis::cmd("XCLAIM")
            .arg(self.key)
            .arg(self.group)
            .arg(self.consumer)
            .arg(millis(min_idle))
            .arg(id)
            .to_owned();
        let reply: Value = run(self.conn, &cmd, self.timeout, "XCLAIM").await?;
        Ok(match reply {
            Value::Array(items) => match items.into_iter().next() {
                None => Claim::Lost,
                Some(Value::Nil) => Claim::Gone,
                Some(item) => parse_entry(item).map_or(Claim::Gone, Claim::Claimed),
            },
            _ => Claim::Lost,
        })
    }

    /// Hands `id`, held by this consumer and not tried, back: idle `idle` (so
    /// others may take it at once) and zero deliveries
    /// (`XCLAIM ... IDLE ms RETRYCOUNT 0 JUSTID`).
    pub(crate) async fn release(&mut self, id: &str, idle: Duration) -> Result<(), String> {
        let cmd = redis::cmd("XCLAIM")
            .arg(self.key)
            .arg(self.group)
            .arg(self.consumer)
            .arg(0)
            .arg(id)
            .arg("IDLE")
            .arg(millis(idle))
            .arg("RETRYCOUNT")
            .arg(0)
            .arg("JUSTID")
            .to_owned();
        run::<Value>(self.conn, &cmd, self.timeout, "XCLAIM")
            .await
            .map(drop)
    }

    /// Acknowledges `id` (`XACK`).
    pub(crate) async fn ack(&mut self, id: &str) -> Result<(), String> {
        let cmd = redis::cmd("XACK")
            .arg(self.key)
            .arg(self.group)
            .arg(id)
            .to_owned();
        run::<Value>(self.conn, &cmd, self.timeout, "XACK")
            .await
            .map(drop)
    }

    /// Appends `letter` to `dead_key` and acknowledges its entry: in one
    /// `MULTI`/`EXEC` on one server; on a cluster, where the two keys sit in
    /// different slots, `XADD` then `XACK` (should the task stop or lose
    /// Redis between the two, the entry stays pending and is dead-lettered
    /// a second time, never POSTed again).
    pub(crate) async fn dead_letter(
        &mut self,
        dead_key: &str,
        max_len: u64,
        letter: &DeadLetter<'_>,
    ) -> Result<(), String> {
        let mut add = redis::cmd("XADD");
        add.arg(dead_key)
            .arg("MAXLEN")
            .arg("~")
            .arg(max_len)
            .arg("*")
            .arg("url")
            .arg(letter.url)
            .arg("id")
            .arg(letter.id)
            .arg("msg")
            .arg(letter.msg)
            .arg("tries")
            .arg(letter.tries)
            .arg("error")
            .arg(letter.error);
        if self.conn.is_cluster() {
            let what = format!("XADD {dead_key}");
            run::<Value>(self.conn, &add, self.timeout, &what).await?;
            return self.ack(letter.id).await;
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .add_command(add)
            .ignore()
            .cmd("XACK")
            .arg(self.key)
            .arg(self.group)
            .arg(letter.id)
            .ignore();
        match tokio::time::timeout(self.timeout, pipe.query_async::<Value>(self.conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("XADD {dead_key}: {e}")),
            Err(_) => Err(format!(
                "XADD {dead_key}: no answer within {:?}",
                self.timeout
            )),
        }
    }

    /// Removes this consumer from the group (`XGROUP DELCONSUMER`).
    pub(crate) async fn delete_consumer(&mut self) -> Result<(), String> {
        let cmd = redis::cmd("XGROUP")
            .arg("DELCONSUMER")
            .arg(self.key)
            .arg(self.group)
            .arg(self.consumer)
            .to_owned();
        run::<Value>(self.conn, &cmd, self.timeout, "XGROUP DELCONSUMER")
            .await
            .map(drop)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
