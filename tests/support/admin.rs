//! Plain client commands of [`TestRedis`](super::TestRedis): connect, `PING`,
//! one-off admin commands, `INFO commandstats`.

use std::collections::HashMap;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

/// A connection without connection or response timeouts: tokio timers fire
/// early under `tokio::time::pause()` while the runtime waits on the socket.
pub(super) async fn connect(url: &str) -> redis::RedisResult<MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(None)
        .set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// `PING` on a fresh connection.
pub(super) async fn ping(url: &str) -> redis::RedisResult<()> {
    let mut con = connect(url).await?;
    let pong: String = redis::cmd("PING").query_async(&mut con).await?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "unexpected PING reply",
            pong,
        )))
    }
}

/// Runs one command whose reply does not matter; panics on any error.
pub(super) async fn run(url: &str, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let mut con = connect(url).await.unwrap_or_else(|e| {
        panic!(
            "cannot connect to the test Redis for {}: {e}",
            args.join(" ")
        )
    });
    cmd.query_async::<redis::Value>(&mut con)
        .await
        .unwrap_or_else(|e| panic!("{} failed on the test Redis: {e}", args.join(" ")));
}

/// `INFO commandstats`, parsed by [`parse_command_stats`].
pub(super) async fn command_stats(url: &str) -> HashMap<String, u64> {
    let mut con = connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test Redis for INFO: {e}"));
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut con)
        .await
        .unwrap_or_else(|e| panic!("INFO commandstats failed on the test Redis: {e}"));
    parse_command_stats(&info)
}

/// `cmdstat_evalsha:calls=3,usec=...` lines to `{"evalsha": 3}`.
pub(super) fn parse_command_stats(info: &str) -> HashMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_ascii_lowercase(), calls))
        })
        .collect()
}
