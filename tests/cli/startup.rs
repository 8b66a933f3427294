//! How `serve` and `demo` start: one mention of a missing admin token
//! (issue 11.8), blank tokens refused (12.5), a Redis that comes up after
//! `serve` (12.5), and the demo's final tally (11.6).

use std::time::Duration;

use crate::running::Running;
use crate::support::procs::{Proc, free_ports};
use crate::support::{TestRedis, wait_until};
use crate::{assert_one_line_error, command, run, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_a_token_says_so_once() {
    let redis = TestRedis::start().await;
    let mut serve = command();
    serve.args([
        "--redis-url",
        &redis.url(),
        "serve",
        "--bind",
        "127.0.0.1:0",
    ]);
    let mut running = Running::spawn(serve);
    running.wait_line("admin routes", Duration::from_secs(20));
    running.signal("TERM");
    assert!(running.exit_within(Duration::from_secs(5)).is_some());
    let all = format!("{}\n{}", running.stdout(), running.stderr());
    let mentions = all
        .lines()
        .filter(|l| l.to_lowercase().contains("admin"))
        .count();
    assert_eq!(mentions, 1, "{all}");
}

#[test]
fn blank_admin_tokens_are_refused_like_other_bad_ones() {
    for token in [" ".repeat(20), "\t".to_owned(), " \t ".repeat(8)] {
        let output = run(&["serve", "--admin-token", &token]);
        assert_one_line_error(&output, "blank");
        let output = run(&[
            "demo",
            "--no-serve",
            "--duration",
            "1s",
            "--admin-token",
            &token,
        ]);
        assert_one_line_error(&output, "blank");
    }
    let output = command()
        .args(["demo", "--no-serve", "--duration", "1s"])
        .env("FLEET_BREAKER_ADMIN_TOKEN", " ".repeat(20))
        .output()
        .unwrap();
    assert_one_line_error(&output, "blank");
}

/// `serve` started before its Redis: alive, not ready, then serving once
/// Redis answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_before_redis_and_serves_once_it_answers() {
    if !crate::support::procs::may_start_servers("this test") {
        return;
    }
    let port = free_ports(1)[0];
    let url = format!("redis://127.0.0.1:{port}");
    let mut serve = command();
    serve.args(["--redis-url", &url, "serve", "--bind", "127.0.0.1:0"]);
    let mut running = Running::spawn(serve);
    let addr = running.addr();
    let said = running.wait_line("store:", Duration::from_secs(5));
    assert!(said.contains("not answering yet"), "{said}");
    let status = |path: &'static str| {
        let addr = addr.clone();
        async move {
            reqwest::get(format!("{addr}{path}"))
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    assert_eq!(status("/healthz").await, 200);
    assert_eq!(status("/readyz").await, 503);
    assert_eq!(status("/api/circuit-breaker/health").await, 503);

    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = ["--save", "", "--appendonly", "no", "--dir"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([dir.path().display().to_string()])
        .collect();
    let _redis = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || Proc::start(&dir, "late", port, &args)
    })
    .await
    .unwrap();
    wait_until("/readyz answers 200", Duration::from_secs(10), || async {
        status("/readyz").await == 200
    })
    .await;
    wait_until("the API answers", Duration::from_secs(5), || async {
        status("/api/circuit-breaker/health").await == 200
    })
    .await;
    tokio::task::block_in_place(|| {
        running.wait_line("answers now", Duration::from_secs(5));
    });
}

/// The tally is printed once at the end, not twice.
#[test]
fn the_demo_prints_its_final_tally_once() {
    let output = run(&["demo", "--no-serve", "--duration", "5s", "--pods", "1"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    let tallies: Vec<&str> = out.lines().filter(|l| l.contains("tasks routed")).collect();
    assert_eq!(tallies.len(), 1, "{out}");
}
