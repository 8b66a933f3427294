//! Helpers of the ACL test: the user's URL, admin commands, `ACL LOG`,
//! waits on transitions and permits, a failing webhook receiver.

use std::collections::HashMap;
use std::time::Duration;

use fleet_breaker::{AgentId, CircuitBreaker, CircuitState, Permit, Transition};
use futures::{Stream, StreamExt};
use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::support::poll_within;

/// A loopback URL that answers every POST with a 500.
pub(crate) async fn failing_receiver() -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

pub(crate) fn agent(name: &str) -> AgentId {
    AgentId::new(name).expect("a valid agent id")
}

/// `url` with `user:password@` in front of its host, if it has no user yet.
pub(crate) fn with_user(url: &str, user: &str, password: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{user}:{password}@{rest}"))
}

/// Runs one admin command; panics on an error.
pub(crate) async fn admin<T: redis::FromRedisValue>(
    conn: &mut MultiplexedConnection,
    args: &[&str],
) -> T {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("{} failed: {e}", args.join(" ")))
}

/// `ACL LOG` entries of `user`, each as `reason object` (e.g. `command flushall`).
pub(crate) async fn acl_log(conn: &mut MultiplexedConnection, user: &str) -> Vec<String> {
    let entries: Vec<Value> = admin(conn, &["ACL", "LOG", "128"]).await;
    entries
        .into_iter()
        .filter_map(|entry| {
            let fields = fields(entry);
            (fields.get("username")? == user).then(|| {
                format!(
                    "{} {}",
                    fields.get("reason").map_or("?", String::as_str),
                    fields.get("object").map_or("?", String::as_str)
                )
            })
        })
        .collect()
}

/// A flat `[field, value, ...]` entry (or a RESP3 map) as text fields.
pub(crate) fn fields(entry: Value) -> HashMap<String, String> {
    let pairs: Vec<(Value, Value)> = match entry {
        Value::Array(flat) => {
            let mut flat = flat.into_iter();
            std::iter::from_fn(|| Some((flat.next()?, flat.next()?))).collect()
        }
        Value::Map(pairs) => pairs,
        _ => Vec::new(),
    };
    pairs
        .into_iter()
        .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
        .collect()
}

pub(crate) fn text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The ids of `user`'s pub/sub connections (`CLIENT LIST TYPE pubsub`).
pub(crate) async fn pubsub_clients(conn: &mut MultiplexedConnection, user: &str) -> Vec<String> {
    let list: String = admin(conn, &["CLIENT", "LIST", "TYPE", "pubsub"]).await;
    let user_field = format!("user={user}");
    list.lines()
        .filter(|line| line.split(' ').any(|field| field == user_field))
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_owned)
        .collect()
}

/// Acquires on `agent` until a permit is granted, within `bound`.
pub(crate) async fn acquire_within(
    breaker: &CircuitBreaker,
    agent: &AgentId,
    bound: Duration,
) -> Permit {
    let last = std::sync::Mutex::new(None);
    let last = &last;
    let permit = poll_within(bound, Duration::from_millis(10), || async move {
        breaker
            .acquire(agent)
            .await
            .map_err(|rejected| *last.lock().unwrap() = Some(rejected))
            .ok()
    })
    .await;
    permit.unwrap_or_else(|| {
        let last = last.lock().unwrap().as_ref().map(ToString::to_string);
        let last = last.unwrap_or_default();
        panic!("no permit for {agent} within {bound:?}; last: {last}")
    })
}

/// Transitions from `stream` until one of `agent` to `to`, within 3 s.
pub(crate) async fn until_state(
    stream: &mut (impl Stream<Item = Transition> + Unpin),
    agent: &AgentId,
    to: CircuitState,
) -> Transition {
    let wait = async {
        loop {
            let t = stream.next().await.expect("the transition stream is open");
            if t.agent_id == *agent && t.to == to {
                return t;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(3), wait)
        .await
        .unwrap_or_else(|_| panic!("{agent} goes {to} within 3 s"))
}

/// The error of one command sent as the ACL user.
pub(crate) async fn refused(conn: &mut MultiplexedConnection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let error = cmd
        .query_async::<Value>(conn)
        .await
        .expect_err(&format!("{} is refused to the ACL user", args.join(" ")));
    error.to_string()
}
