//! The fault proxy itself: it forwards, delays, holds, resets and refuses
//! as its docs say.

use std::time::{Duration, Instant};

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::proxy::{Direction, FaultProxy};
use crate::support::{TestRedis, wait_until};

/// The proxy needs a Redis it can reach on loopback by port.
fn on_loopback(redis: &TestRedis) -> bool {
    let local = redis.url().starts_with("redis://127.0.0.1:");
    if !local {
        eprintln!("skipped: the proxy forwards to 127.0.0.1, and REDIS_URL is elsewhere");
    }
    local
}

async fn connect(url: &str, response_timeout: Duration) -> MultiplexedConnection {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response_timeout));
    redis::Client::open(url)
        .expect("a valid URL")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect through the proxy")
}

async fn ping(conn: &mut MultiplexedConnection) -> redis::RedisResult<String> {
    redis::cmd("PING").query_async(conn).await
}

/// A raw TCP connection through the proxy, for byte-level checks.
async fn raw(proxy: &FaultProxy) -> TcpStream {
    TcpStream::connect(("127.0.0.1", proxy.port()))
        .await
        .expect("connect to the proxy")
}

/// Reads until `want` bytes have come, or `within` passes.
async fn read_within(stream: &mut TcpStream, want: usize, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(within, async {
        let mut buf = [0u8; 256];
        while got.len() < want {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    got
}

#[tokio::test]
async fn a_ping_goes_through_the_proxy_and_is_counted_as_a_connection() {
    let redis = TestRedis::start().await;
    if !on_loopback(&redis) {
        return;
    }
    let proxy = FaultProxy::start(redis.port()).await;
    assert_eq!(proxy.connections(), 0);
    let mut conn = connect(&proxy.url(), Duration::from_secs(2)).await;
    assert_eq!(ping(&mut conn).await.unwrap(), "PONG");
    assert_eq!(proxy.connections(), 1);
    drop(conn);
    wait_until(
        "the proxy sees the client go",
        Duration::from_secs(2),
        || async { proxy.connections() == 0 },
    )
    .await;
}

#[tokio::test]
async fn latency_delays_each_direction_and_heal_removes_it() {
    let redis = TestRedis::start().await;
    if !on_loopback(&redis) {
        return;
    }
    let proxy = FaultProxy::start(redis.port()).await;
    let mut conn = connect(&proxy.url(), Duration::from_secs(2)).await;
    ping(&mut conn).await.unwrap();

    let timed = async |conn: &mut MultiplexedConnection| {
        let started = Instant::now();
        assert_eq!(ping(conn).await.unwrap(), "PONG");
        started.elapsed()
    };
    proxy.set_latency(Duration::from_millis(60));
    let both = timed(&mut conn).await;
    assert!(
        (Duration::from_millis(120)..Duration::from_millis(500)).contains(&both),
        "60 ms each way: a round trip of {both:?}"
    );
    proxy.heal();
    proxy.set_latency_toward(Direction::ToClient, Duration::from_millis(60));
    let one = timed(&mut conn).await;
    assert!(
        (Duration::from_millis(60)..Duration::from_millis(120)).contains(&one),
        "60 ms on replies only: a round trip of {one:?}"
    );
    proxy.heal();
    let healed = timed(&mut conn).await;
    assert!(healed < Duration::from_millis(50), "healed: {healed:?}");
}

#[tokio::test]
async fn latency_delays_every_request_without_capping_throughput() {
    let redis = TestRedis::start().await;
    if !on_loopback(&redis) {
        return;
    }
    let proxy = FaultProxy::start(redis.port()).await;
    let conn = connect(&proxy.url(), Duration::from_secs(5)).await;
    proxy.set_latency(Duration::from_millis(50));
    let started = Instant::now();
    let pings = (0..50).map(|_| {
        let mut conn = conn.clone();
        async move { ping(&mut conn).await.unwrap() }
    });
    let answers = futures::future::join_all(pings).await;
    let took = started.elapsed();
    assert!(answers.iter().all(|a| a == "PONG"));
    assert!(
        (Duration::from_millis(100)..Duration::from_millis(600)).contains(&took),
        "50 concurrent PINGs with 100 ms of round-trip latency took {took:?}: \
         a delay line, not one sleep per chunk in a row"
    );
}

#[tokio::test]
async fn a_blackhole_answers_nothing_closes_nothing_and_heal_delivers_in_order() {
    let redis = TestRedis::start().await;
    if !on_loopback(&redis) {
        return;
    }
    let proxy = FaultProxy::start(redis.port()).await;
    let mut conn = connect(&proxy.url(), Duration::from_millis(200)).await;
    let mut stream = raw(&proxy).await;
    ping(&mut conn).await.unwrap();

    proxy.blackhole();
    let error = ping(&mut conn).await.expect_err("no answer in a blackhole");
    assert!(error.is_timeout(), "a response timeout, not {error:?}");
    stream.write_all(b"PING\r\nECHO hello\r\n").await.unwrap();
    let silent = read_within(&mut stream, 1, Duration::from_millis(300)).await;
    assert!(
        silent.is_empty(),
        "answered through a blackhole: {silent:?}"
    );
    assert_eq!(proxy.connections(), 2, "the sockets stay open");
    // New connections are accepted, and answered nothing either.
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(300)))
        .set_response_timeout(Some(Duration::from_millis(300)));
    let client = redis::Client::open(proxy.url()).unwrap();
    let fresh = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map(drop);
    assert!(fresh.is_err(), "a connection set up through a blackhole");

    proxy.heal();
    let held = read_within(&mut stream, 14, Duration::from_secs(2)).await;
    assert_eq!(
        held, b"+PONG\r\n$5\r\nhello\r\n",
        "held requests go out in order"
    );
    assert_eq!(ping(&mut conn).await.unwrap(), "PONG");
    let mut fresh = connect(&proxy.url(), Duration::from_secs(2)).await;
    assert_eq!(ping(&mut fresh).await.unwrap(), "PONG");
}

#[tokio::test]
async fn reset_all_closes_every_open_connection_with_an_rst() {
    let redis = TestRedis::start().await;
    if !on_loopback(&redis) {
        return;
    }
    let proxy = FaultProxy::start(redis.port()).await;
    let mut conn = connect(&proxy.url(), Duration::from_secs(2)).await;
    let mut stream = raw(&proxy).await;
    ping(&mut conn).await.unwrap();
    stream.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(
        read_within(&mut stream, 7, Duration::from_secs(2)).await,
        b"+PONG\r\n"
    );
    // Held chunks go too.
    proxy.blackhole();
    stream.write_all(b"PING\r\n").await.unwrap();

    proxy.reset_all();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
        .await
        .expect("the reset arrives at once");
    let error = read.expect_err("an RST, not an EOF or data");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    let error = ping(&mut conn).await.expect_err("the connection is gone");
    assert!(
        error.is_connection_dropped() || error.is_io_error(),
        "{error:?}"
    );
    wait_until(
        "every connection is gone",
        Duration::from_secs(2),
        || async { proxy.connections() == 0 },
    )
    .await;

    proxy.heal();
    let mut fresh = connect(&proxy.url(), Duration::from_secs(2)).await;
    assert_eq!(ping(&mut fresh).await.unwrap(), "PONG");
}

#[tokio::test]
async fn refuse_resets_new_connections_and_leaves_open_ones_alone() {
    let redis = TestRedis::start().await;
    if !on_loopback(&redis) {
        return;
    }
    let proxy = FaultProxy::start(redis.port()).await;
    let mut open = connect(&proxy.url(), Duration::from_secs(2)).await;
    ping(&mut open).await.unwrap();

    proxy.refuse(true);
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)));
    let started = Instant::now();
    let refused = redis::Client::open(proxy.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map(drop)
        .expect_err("a refused connection");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused at once, not timed out: {refused:?} after {:?}",
        started.elapsed()
    );
    assert_eq!(ping(&mut open).await.unwrap(), "PONG", "open ones carry on");

    proxy.refuse(false);
    let mut fresh = connect(&proxy.url(), Duration::from_secs(2)).await;
    assert_eq!(ping(&mut fresh).await.unwrap(), "PONG");
}

#[tokio::test]
async fn a_killed_upstream_resets_new_connections_at_once() {
    let mut redis = TestRedis::start().await;
    if !redis.is_owned() {
        eprintln!("skipped: this test kills the server, and REDIS_URL is not ours");
        return;
    }
    let proxy = FaultProxy::start(redis.port()).await;
    redis.kill();
    let mut stream = raw(&proxy).await;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(
        matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{read:?}"
    );
    redis.restart().await;
    let mut conn = connect(&proxy.url(), Duration::from_secs(2)).await;
    assert_eq!(ping(&mut conn).await.unwrap(), "PONG");
}
