//! Connection failures say what a person needs: which address, what
//! failed, what to try; never the client library's own words.

use crate::support::TestRedis;
use crate::{assert_one_line_error, run, stderr, stdout};

/// Words of the redis crate and its pool that mean nothing to a user.
const INTERNALS: [&str; 6] = [
    "creating a new object",
    "os error",
    "AuthenticationFailed",
    "Failed to create initial connections",
    "Io:",
    "ResponseError",
];

fn assert_no_internals(args: &[&str]) -> String {
    let output = run(args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{args:?}: {err}");
    for internal in INTERNALS {
        assert!(!err.contains(internal), "{args:?}: {internal:?} in {err}");
    }
    assert_one_line_error(&output, "");
    err
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn a_refused_connection_names_the_address_and_what_to_check() {
    let port = closed_port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let err = assert_no_internals(&["--redis-url", &url, "status"]);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("connection refused"), "{err}");
    assert!(err.contains("check that Redis runs"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn demo_checks_its_redis_before_printing_anything() {
    let url = format!("redis://127.0.0.1:{}", closed_port());
    let args = [
        "--redis-url",
        url.as_str(),
        "demo",
        "--no-serve",
        "--duration",
        "1s",
    ];
    let output = run(&args);
    assert_eq!(stdout(&output), "", "nothing printed before the failure");
    assert!(
        stderr(&output).contains("connection refused"),
        "{}",
        stderr(&output)
    );
    assert_no_internals(&args);
}

#[test]
fn an_unknown_host_says_the_name_does_not_resolve() {
    let args = ["--redis-url", "redis://no-such-host.invalid:6379", "status"];
    let err = assert_no_internals(&args);
    assert!(err.contains("no-such-host.invalid"), "{err}");
    assert!(err.contains("cannot resolve"), "{err}");
}

#[test]
fn a_server_that_never_answers_names_the_address_and_the_timeout_flag() {
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port();
    let url = format!("redis://127.0.0.1:{port}");
    let err = assert_no_internals(&["--redis-url", &url, "status"]);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("within 100ms"), "{err}");
    assert!(err.contains("--redis-timeout"), "{err}");
}

#[tokio::test]
async fn a_wrong_password_says_so() {
    let redis = TestRedis::start().await;
    let Some(rest) = redis.url().strip_prefix("redis://").map(str::to_owned) else {
        return;
    };
    if rest.contains('@') {
        eprintln!("skipped: REDIS_URL already has credentials");
        return;
    }
    let url = format!("redis://nobody:wrong@{rest}");
    let err = assert_no_internals(&["--redis-url", &url, "status"]);
    assert!(err.contains("user name or password"), "{err}");
    assert!(!err.contains("wrong"), "{err}");
}

#[tokio::test]
async fn tls_to_a_plain_port_and_a_single_server_as_a_cluster_say_what_to_use() {
    let redis = TestRedis::start().await;
    let Some(rest) = redis.url().strip_prefix("redis://").map(str::to_owned) else {
        return;
    };
    let tls = format!("rediss://{rest}");
    let err = assert_no_internals(&["--redis-url", &tls, "status"]);
    assert!(err.contains(&tls), "{err}");
    assert!(err.contains("TLS"), "{err}");

    let err = assert_no_internals(&["--redis-cluster", &redis.url(), "status"]);
    assert!(err.contains("not a Redis Cluster"), "{err}");
    assert!(err.contains("--redis-url"), "{err}");
}

#[test]
fn unreachable_cluster_nodes_and_sentinels_are_named() {
    let port = closed_port();
    let node = format!("redis://127.0.0.1:{port}");
    let err = assert_no_internals(&["--redis-cluster", &node, "status"]);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("connection refused"), "{err}");

    let args = [
        "--redis-sentinel",
        &node,
        "--sentinel-master",
        "mymaster",
        "status",
    ];
    let err = assert_no_internals(&args);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("sentinel"), "{err}");
    assert!(err.contains("connection refused"), "{err}");
}

#[tokio::test]
async fn a_redis_that_stops_answering_after_connecting_is_named_too() {
    let redis = TestRedis::start().await;
    let prefix = crate::support::unique_prefix("cli_paused");
    let _pod = crate::fleet_with_agents(&redis, &prefix, &["agent-1"]).await;
    let mut admin = redis.connection().await;
    // Writes (scripts included) wait; the PING that checks a new connection
    // does not: the command connects, then its script times out. (`status`
    // reads without a script, so it answers through a write pause.)
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(5_000)
        .arg("WRITE")
        .query_async::<()>(&mut admin)
        .await
        .expect("CLIENT PAUSE");
    let url = redis.url();
    let status = crate::command()
        .args(["--redis-url", &url, "--prefix", &prefix, "status"])
        .env("RUST_LOG", "error")
        .output()
        .expect("the binary runs");
    assert!(
        status.status.success(),
        "status reads through a write pause: {}",
        stderr(&status)
    );
    let output = crate::command()
        .args(["--redis-url", &url, "--prefix", &prefix, "reset", "agent-1"])
        .env("RUST_LOG", "error")
        .output()
        .expect("the binary runs");
    redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async::<()>(&mut admin)
        .await
        .expect("CLIENT UNPAUSE");
    assert_one_line_error(&output, "no answer from Redis at");
    let err = stderr(&output);
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("--redis-timeout"), "{err}");
}
