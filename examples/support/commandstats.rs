//! `INFO commandstats`, read and compared, for the examples that report
//! Redis load (`fleet`, `footprint`).

use std::collections::BTreeMap;

use redis::aio::MultiplexedConnection;

/// Commands Redis runs inside our Lua scripts. `INFO commandstats` counts
/// them under their own names as well as the `FCALL` (or `EVALSHA`) that ran them, but
/// no client sent them, so they are not round trips: leave them out.
/// `hgetall` is every script's read of the agent's settings; neither
/// example's client sends one in the windows it counts.
pub(crate) const RUN_INSIDE_SCRIPTS: &str = "time hmget hgetall hset exists zrange zadd zrem \
     zremrangebyscore del sadd xadd publish pexpire persist hdel";

/// `INFO commandstats` as command name -> calls.
pub(crate) async fn commandstats(
    conn: &mut MultiplexedConnection,
) -> redis::RedisResult<BTreeMap<String, u64>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    Ok(info
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect())
}

/// `INFO commandstats` of every server in `conns` (a cluster's masters),
/// summed by command name.
#[allow(dead_code)] // footprint reads one server
pub(crate) async fn commandstats_all(
    conns: &mut [MultiplexedConnection],
) -> redis::RedisResult<BTreeMap<String, u64>> {
    let mut total = BTreeMap::new();
    for conn in conns {
        for (name, calls) in commandstats(conn).await? {
            *total.entry(name).or_insert(0) += calls;
        }
    }
    Ok(total)
}

/// Commands clients sent between two `INFO commandstats`, by name.
#[allow(dead_code)] // fleet reads several servers: `client_commands_on`
pub(crate) fn client_commands(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    client_commands_on(before, after, 1)
}

/// [`client_commands`] of `servers` servers read one after the other: the
/// first read's `INFO` lands inside the window once per server.
pub(crate) fn client_commands_on(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    servers: u64,
) -> BTreeMap<String, u64> {
    let mut sent: BTreeMap<String, u64> = after
        .iter()
        .filter(|(name, _)| !RUN_INSIDE_SCRIPTS.split(' ').any(|n| n == name.as_str()))
        .map(|(name, n)| {
            (
                name.clone(),
                n.saturating_sub(before.get(name).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    // The first of our two INFO calls lands inside the window: not the fleet's.
    if let Some(info) = sent.get_mut("info") {
        *info = info.saturating_sub(servers);
    }
    sent.retain(|_, n| *n > 0);
    sent
}

/// `SCAN MATCH prefix*` on one server and `UNLINK` each key found, one by
/// one (on a cluster node the keys are in different slots): what a run left.
/// Returns how many keys went.
#[allow(dead_code)] // footprint leaves nothing behind
pub(crate) async fn delete_prefix(
    conn: &mut MultiplexedConnection,
    prefix: &str,
) -> redis::RedisResult<usize> {
    let (mut cursor, mut removed) = (0u64, 0);
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        for key in &keys {
            let _: u64 = redis::cmd("UNLINK").arg(key).query_async(conn).await?;
            removed += 1;
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}
