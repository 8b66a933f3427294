//! Corrupt data written into an agent's hash by hand, for the tests of
//! issue 12.1 (tests/store, tests/http).

use redis::AsyncCommands;

/// Each corruption of issue 12.1, and a missing field: (field, value);
/// `None` deletes the field.
pub const CORRUPTIONS: [(&str, Option<&str>); 6] = [
    ("state", Some("bogus")),
    ("failure_count", Some("-5")),
    ("failure_count", Some("abc")),
    ("generation", Some("99999999999999999999")),
    ("backoff_ms", None),
    ("epoch", Some("abc")),
];

/// Writes one corruption into `agent`'s hash.
pub async fn corrupt(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    agent: &str,
    (field, value): (&str, Option<&str>),
) {
    let key = format!("{prefix}:{{{agent}}}:state");
    match value {
        Some(value) => conn.hset::<_, _, _, ()>(&key, field, value).await.unwrap(),
        None => conn.hdel::<_, _, ()>(&key, field).await.unwrap(),
    }
}
