//! The test harness itself (`tests/support`): it starts a Redis of its own,
//! kills and restarts it on the same port, and stops it on drop.

mod support;

use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use support::{TestRedis, unique_prefix, wait_until};

/// Whether anything accepts TCP connections on the loopback `port`.
fn port_answers(port: u16) -> bool {
    TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(200),
    )
    .is_ok()
}

async fn ping(redis: &TestRedis) -> String {
    let mut con = redis.connection().await;
    redis::cmd("PING")
        .query_async(&mut con)
        .await
        .expect("PING")
}

/// Skips (with a printed reason) tests that need a server of their own.
fn owned_or_skip(redis: &TestRedis) -> bool {
    if !redis.is_owned() {
        eprintln!("skipped: REDIS_URL or a container is not a server this test may kill");
    }
    redis.is_owned()
}

#[tokio::test]
async fn a_started_server_answers_ping_at_its_url() {
    let redis = TestRedis::start().await;
    assert_eq!(ping(&redis).await, "PONG");
    let client = redis::Client::open(redis.url()).expect("a valid URL");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect by url()");
    let pong: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
    assert_eq!(pong, "PONG");
    if redis.is_owned() {
        assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
        assert_ne!(redis.port(), 6379, "never the machine's shared Redis");
    }
}

#[tokio::test]
async fn an_owned_server_persists_nothing() {
    let redis = TestRedis::start().await;
    if !owned_or_skip(&redis) {
        return;
    }
    let mut con = redis.connection().await;
    let config: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(config, ["save", ""]);
    let aof: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(aof, ["appendonly", "no"]);
}

#[tokio::test]
async fn kill_makes_it_unreachable_and_restart_brings_back_an_empty_server_on_the_same_port() {
    let mut redis = TestRedis::start().await;
    if !owned_or_skip(&redis) {
        return;
    }
    let port = redis.port();
    let key = format!("{}:k", unique_prefix("harness-restart"));
    let mut con = redis.connection().await;
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("v")
        .query_async(&mut con)
        .await
        .unwrap();

    redis.kill();
    assert!(!port_answers(port), "nothing listens on {port} after kill");
    assert_eq!(redis.pid(), None);
    redis.kill(); // a second kill does nothing

    redis.restart().await;
    assert_eq!(redis.port(), port);
    assert_eq!(ping(&redis).await, "PONG");
    let mut con = redis.connection().await;
    let value: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(value, None, "the restarted server is empty");

    // Restart without a kill first replaces the running server.
    let before = redis.pid();
    redis.restart().await;
    assert_ne!(redis.pid(), before);
    assert_eq!(ping(&redis).await, "PONG");
}

#[tokio::test]
async fn two_instances_get_different_ports() {
    let (a, b) = tokio::join!(TestRedis::start(), TestRedis::start());
    if !owned_or_skip(&a) {
        return;
    }
    assert_ne!(a.port(), b.port());
    assert_ne!(a.pid(), b.pid());
    let key = unique_prefix("harness-two");
    let mut con = a.connection().await;
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(1)
        .query_async(&mut con)
        .await
        .unwrap();
    let mut con = b.connection().await;
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(!exists, "the two servers share no data");
}

#[tokio::test]
async fn drop_stops_the_process() {
    let redis = TestRedis::start().await;
    if !owned_or_skip(&redis) {
        return;
    }
    let port = redis.port();
    let pid = redis.pid().expect("a running server has a pid");
    assert!(port_answers(port));
    drop(redis);
    assert!(!port_answers(port), "nothing listens on {port} after drop");
    #[cfg(target_os = "linux")]
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} is killed and reaped"
    );
    let _ = pid;
}

#[tokio::test]
async fn flushall_script_flush_and_command_stats() {
    let redis = TestRedis::start().await;
    if !owned_or_skip(&redis) {
        return; // FLUSHALL would wipe other tests' keys on a shared server
    }
    let mut con = redis.connection().await;
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return 1")
        .query_async(&mut con)
        .await
        .unwrap();
    redis.reset_stats().await;
    for _ in 0..3 {
        let one: i64 = redis::cmd("EVALSHA")
            .arg(&sha)
            .arg(0)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(one, 1);
    }
    let stats = redis.command_stats().await;
    assert_eq!(stats.get("evalsha"), Some(&3), "{stats:?}");

    redis.script_flush().await;
    let err = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(0)
        .query_async::<i64>(&mut con)
        .await
        .expect_err("flushed");
    assert!(err.to_string().to_lowercase().contains("noscript"), "{err}");

    let () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut con)
        .await
        .unwrap();
    redis.flushall().await;
    let size: u64 = redis::cmd("DBSIZE").query_async(&mut con).await.unwrap();
    assert_eq!(size, 0);
}

#[tokio::test]
async fn unique_prefixes_differ_and_keep_hash_tags_intact() {
    let a = unique_prefix("same name");
    let b = unique_prefix("same name");
    assert_ne!(a, b);
    assert!(a.starts_with("fbt-same-name-"), "{a}");
    assert!(
        a.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{a}"
    );
}

#[tokio::test]
async fn wait_until_returns_once_the_condition_holds() {
    let start = std::time::Instant::now();
    let mut polls = 0;
    wait_until("the third poll", Duration::from_secs(2), || {
        polls += 1;
        let done = polls >= 3;
        async move { done }
    })
    .await;
    assert_eq!(polls, 3);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
#[should_panic(expected = "timed out after 50ms waiting until the impossible")]
async fn wait_until_panics_naming_what_on_timeout() {
    wait_until("the impossible", Duration::from_millis(50), || async {
        false
    })
    .await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "waiting until a future that never completes")]
async fn wait_until_bounds_a_hanging_condition_in_wall_clock_time_even_with_paused_time() {
    wait_until(
        "a future that never completes",
        Duration::from_millis(100),
        std::future::pending::<bool>,
    )
    .await;
}

#[test]
fn init_tracing_is_idempotent() {
    support::init_tracing();
    support::init_tracing();
    tracing::info!("tracing from the harness test");
}
