//! How `demo` and `serve` take connections: the default port's fallback
//! (issue 11.9), timeouts and the connection cap (issue 12.2).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::running::{Running, closed_within, connect, host, read_until, sse_client};
use crate::stopping::{TOKEN, demo};
use crate::{assert_one_line_error, command};

/// A partial request line and headers: the server waits for the rest.
const PARTIAL: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n";

#[test]
fn demo_moves_to_the_next_free_port_when_its_default_is_taken() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().port();
    let mut demo = command();
    demo.args(["demo", "--pods", "1", "--rate", "5"])
        .env("FLEET_BREAKER_DEMO_ADDR", format!("127.0.0.1:{taken}"));
    let mut running = Running::spawn(demo);
    let said = running.wait_line(&format!("port {taken} is taken"), Duration::from_secs(20));
    let addr = running.addr();
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, taken, "{said}");
    assert!(said.contains(&format!("using port {port}")), "{said}");
    let mut healthz = connect(&addr, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let answer = read_until(&mut healthz, "\r\n\r\n", Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn an_explicit_bind_on_a_taken_port_is_an_error() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    for explicit in [
        command()
            .args(["demo", "--duration", "1s", "--bind", &addr])
            .output(),
        command()
            .args(["demo", "--duration", "1s"])
            .env("FLEET_BREAKER_BIND", &addr)
            .output(),
    ] {
        assert_one_line_error(&explicit.unwrap(), &addr);
    }
}

#[test]
fn partial_silent_and_idle_connections_are_closed_after_their_timeouts() {
    let mut quick = demo(&[]);
    quick
        .env("FLEET_BREAKER_HEADER_READ_TIMEOUT", "1s")
        .env("FLEET_BREAKER_IDLE_TIMEOUT", "1s");
    let mut running = Running::spawn(quick);
    let addr = running.addr();
    let mut partial = connect(&addr, PARTIAL);
    let mut silent = connect(&addr, b"");
    let mut idle = connect(&addr, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let answer = read_until(&mut idle, "\"ok\"", Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for (what, stream) in [
        ("partial headers", &mut partial),
        ("silent", &mut silent),
        ("idle keep-alive", &mut idle),
    ] {
        assert!(
            closed_within(stream, Duration::from_secs(4)),
            "the {what} connection is still open"
        );
    }
}

#[test]
fn an_unfinished_chunked_body_gets_a_408_and_the_connection_closes() {
    let mut quick = demo(&[]);
    quick.env("FLEET_BREAKER_BODY_READ_TIMEOUT", "1s");
    let mut running = Running::spawn(quick);
    let addr = running.addr();
    let request = format!(
        "POST /api/circuit-breaker/force/agent-1 HTTP/1.1\r\nHost: t\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n5\r\n{{\"sta\r\n"
    );
    let mut stream = connect(&addr, request.as_bytes());
    let answer = read_until(&mut stream, "}", Duration::from_secs(4));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(closed_within(&mut stream, Duration::from_secs(2)));
}

/// The idle timeout never cuts a live SSE stream: one opened before a
/// timeout's worth of quiet still gets the next transition.
#[test]
fn an_sse_stream_outlives_the_idle_and_header_timeouts() {
    let mut quick = demo(&["--cycle", "1h"]);
    quick
        .env("FLEET_BREAKER_HEADER_READ_TIMEOUT", "1s")
        .env("FLEET_BREAKER_IDLE_TIMEOUT", "1s");
    let mut running = Running::spawn(quick);
    let addr = running.addr();
    let mut stream = sse_client(&addr);
    assert!(
        !closed_within(&mut stream, Duration::from_secs(3)),
        "the SSE stream was cut"
    );
    let body = r#"{"state":"open"}"#;
    let force = format!(
        "POST /api/circuit-breaker/force/agent-1 HTTP/1.1\r\nHost: t\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut admin = connect(&addr, force.as_bytes());
    let answer = read_until(&mut admin, "\r\n\r\n", Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let events = read_until(&mut stream, "forced_open", Duration::from_secs(5));
    assert!(events.contains("forced_open"), "{events}");
}

/// Over the cap, when every connection is busy (SSE streams), a new one
/// is answered 503 at once without sending a byte, and closed; once the
/// streams go, new ones are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_of_busy_connections_a_new_one_gets_a_503_at_once() {
    const CAP: usize = 20;
    let mut capped = demo(&[]);
    capped.env("FLEET_BREAKER_MAX_CONNECTIONS", CAP.to_string());
    let mut running = Running::spawn(capped);
    let addr = running.addr();
    let streams: Vec<_> = (0..CAP).map(|_| sse_client(&addr)).collect();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(host(&addr)).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer))
            .await
            .expect("answered and closed at once")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer).to_lowercase();
        assert!(answer.starts_with("http/1.1 503"), "{answer:?}");
        assert!(answer.contains("connection: close"), "{answer}");
    }
    drop(streams);
    crate::support::wait_until("/healthz answers again", Duration::from_secs(5), || {
        let addr = addr.clone();
        async move {
            reqwest::get(format!("{addr}/healthz"))
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    drop(running);
}

/// Over the cap, a new connection takes the place of the oldest one that
/// holds a half-sent request: held connections never keep `/healthz` out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_the_oldest_held_connections_make_room() {
    const CAP: usize = 100;
    const MORE: usize = 50;
    let mut capped = demo(&[]);
    capped
        .env("FLEET_BREAKER_MAX_CONNECTIONS", CAP.to_string())
        .env("FLEET_BREAKER_HEADER_READ_TIMEOUT", "30s");
    let mut running = Running::spawn(capped);
    let addr = running.addr();
    let mut held = Vec::new();
    for _ in 0..CAP + MORE {
        let mut stream = tokio::net::TcpStream::connect(host(&addr)).await.unwrap();
        stream.write_all(PARTIAL).await.unwrap();
        held.push(stream);
    }
    let healthz = tokio::time::timeout(
        Duration::from_secs(2),
        reqwest::get(format!("{addr}/healthz")),
    )
    .await
    .expect("/healthz answers within 2 s")
    .unwrap();
    assert_eq!(healthz.status(), 200);
    let mut reads = tokio::task::JoinSet::new();
    for (n, mut stream) in held.into_iter().enumerate() {
        reads.spawn(async move {
            let mut answer = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
            (n, read.is_ok(), answer.is_empty())
        });
    }
    let (mut closed_old, mut closed_new) = (0, 0);
    while let Some(result) = reads.join_next().await {
        let (n, closed, silent) = result.unwrap();
        if closed {
            assert!(silent, "an evicted connection gets no answer");
            if n < CAP {
                closed_old += 1;
            } else {
                closed_new += 1;
            }
        }
    }
    assert!(
        closed_old > MORE && closed_new == 0,
        "closed: {closed_old} of the first {CAP}, {closed_new} of the last {MORE}"
    );
    drop(running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_hundreds_of_connections_hold_partial_requests() {
    let mut running = Running::spawn(demo(&[]));
    let addr = running.addr();
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut stream = tokio::net::TcpStream::connect(host(&addr)).await.unwrap();
        stream.write_all(PARTIAL).await.unwrap();
        held.push(stream);
    }
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        reqwest::get(format!("{addr}/healthz")),
    )
    .await
    .expect("/healthz answers within 2 s")
    .unwrap();
    assert_eq!(answer.status(), 200);
    drop(held);
}
