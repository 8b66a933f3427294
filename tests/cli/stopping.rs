//! `demo` and `serve` stop on Ctrl-C, SIGTERM or the end of `--duration`
//! within 2 s, whatever clients are connected (issue 11.1).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::command;
use crate::running::{Running, closed_within, connect, read_until, sse_client};
use crate::support::TestRedis;

/// An admin token of the right length.
pub(crate) const TOKEN: &str = "stop-test-token-0123456789";

/// How long a stop may take, from the signal to the exit.
const STOP_BOUND: Duration = Duration::from_secs(2);

/// `demo` with one slow pod and the dashboard on a free port.
pub(crate) fn demo(extra: &[&str]) -> Command {
    let mut demo = command();
    demo.args([
        "demo",
        "--bind",
        "127.0.0.1:0",
        "--pods",
        "1",
        "--rate",
        "5",
    ])
    .args(["--admin-token", TOKEN])
    .args(extra);
    demo
}

/// The process exits 0 within [`STOP_BOUND`] and says once that it stopped,
/// naming why.
fn assert_stops(running: &mut Running, why: &str) {
    let status = running.exit_within(STOP_BOUND);
    let out = running.stdout();
    assert!(
        status.is_some(),
        "still running {STOP_BOUND:?} after the stop; stdout:\n{out}\nstderr:\n{}",
        running.stderr()
    );
    assert_eq!(
        status.unwrap().code(),
        Some(0),
        "{out}\n{}",
        running.stderr()
    );
    let stops: Vec<&str> = out.lines().filter(|l| l.contains("stopped")).collect();
    assert_eq!(stops.len(), 1, "one stop line: {out}");
    assert!(stops[0].contains(why), "{stops:?} names {why}");
}

#[test]
fn demo_stops_on_sigint_with_sse_clients_connected() {
    let mut running = Running::spawn(demo(&[]));
    let addr = running.addr();
    let mut streams = [sse_client(&addr), sse_client(&addr)];
    running.signal("INT");
    assert_stops(&mut running, "Ctrl-C");
    for stream in &mut streams {
        assert!(closed_within(stream, Duration::from_secs(1)), "SSE ended");
    }
}

#[test]
fn demo_stops_on_sigterm_with_an_sse_client_connected() {
    let mut running = Running::spawn(demo(&[]));
    let addr = running.addr();
    let _stream = sse_client(&addr);
    running.signal("TERM");
    assert_stops(&mut running, "SIGTERM");
}

#[test]
fn demo_stops_at_the_end_of_its_duration_with_an_sse_client_connected() {
    let started = Instant::now();
    let mut running = Running::spawn(demo(&["--duration", "2s"]));
    let addr = running.addr();
    let _stream = sse_client(&addr);
    let left = Duration::from_secs(2).saturating_sub(started.elapsed());
    let status = running.exit_within(left + STOP_BOUND);
    assert!(status.is_some(), "demo --duration 2s still runs");
    assert_stops(&mut running, "--duration 2s elapsed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stops_on_sigterm_and_sigint_with_sse_clients_connected() {
    let redis = TestRedis::start().await;
    for signal in ["TERM", "INT"] {
        let mut serve = command();
        serve.args([
            "--redis-url",
            &redis.url(),
            "serve",
            "--bind",
            "127.0.0.1:0",
        ]);
        let mut running = Running::spawn(serve);
        let addr = running.addr();
        let _streams = [sse_client(&addr), sse_client(&addr)];
        running.signal(signal);
        let why = if signal == "TERM" {
            "SIGTERM"
        } else {
            "Ctrl-C"
        };
        tokio::task::block_in_place(|| assert_stops(&mut running, why));
    }
}

/// A request whose body never comes holds the first stop for its grace
/// (set long here); a second Ctrl-C ends the process at once.
#[test]
fn a_second_sigint_ends_the_process_at_once() {
    let mut slow = demo(&[]);
    slow.env("FLEET_BREAKER_SHUTDOWN_GRACE", "60s")
        .env("FLEET_BREAKER_BODY_READ_TIMEOUT", "60s");
    let mut running = Running::spawn(slow);
    let addr = running.addr();
    let _sse = sse_client(&addr);
    // `Expect: 100-continue`: the server answers `100 Continue` when the
    // handler starts reading the body, so the test knows the request is in
    // flight before it signals (a request still unread is not, and would
    // let the first Ctrl-C end the process at once).
    let request = format!(
        "POST /api/circuit-breaker/force/agent-1 HTTP/1.1\r\nHost: t\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         Expect: 100-continue\r\nContent-Length: 100\r\n\r\n"
    );
    let mut unfinished = connect(&addr, request.as_bytes());
    let continued = read_until(&mut unfinished, "100 Continue", Duration::from_secs(5));
    assert!(continued.contains("100 Continue"), "{continued:?}");
    unfinished.write_all(b"{\"sta").expect("part of the body");
    running.signal("INT");
    assert!(
        running.exit_within(Duration::from_millis(500)).is_none(),
        "the first Ctrl-C waits for the request in flight"
    );
    running.signal("INT");
    let status = running.exit_within(Duration::from_secs(1));
    assert!(status.is_some(), "a second Ctrl-C ends the process at once");
    assert_eq!(status.unwrap().code(), Some(130));
}
