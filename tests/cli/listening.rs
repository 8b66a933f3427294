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
        "POST /api/circuit-breaker/force/agent-3 HTTP/1.1\r\nHost: t\r\n\
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

/// Over the cap, a connection is answered 503 at once without sending a
/// byte, and closed; those under the cap stay open; when they go, new
/// ones are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_a_503_at_once() {
    const CAP: usize = 100;
    const OVER: usize = 50;
    let mut capped = demo(&[]);
    capped
        .env("FLEET_BREAKER_MAX_CONNECTIONS", CAP.to_string())
        .env("FLEET_BREAKER_HEADER_READ_TIMEOUT", "30s");
    let mut running = Running::spawn(capped);
    let addr = running.addr();
    let mut held = Vec::new();
    for _ in 0..CAP + OVER {
        let mut stream = tokio::net::TcpStream::connect(host(&addr)).await.unwrap();
        stream.write_all(PARTIAL).await.unwrap();
        held.push(stream);
    }
    let mut reads = tokio::task::JoinSet::new();
    for (n, mut stream) in held.into_iter().enumerate() {
        reads.spawn(async move {
            let mut answer = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
            (
                n,
                read.is_ok(),
                String::from_utf8_lossy(&answer).into_owned(),
                stream,
            )
        });
    }
    let mut refused = 0;
    let mut kept = Vec::new();
    while let Some(result) = reads.join_next().await {
        let (_, closed, answer, stream) = result.unwrap();
        if closed {
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
            assert!(
                answer.to_lowercase().contains("connection: close"),
                "{answer}"
            );
            refused += 1;
        } else {
            kept.push(stream);
        }
    }
    assert_eq!((refused, kept.len()), (OVER, CAP), "refused, kept");
    drop(kept);
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
