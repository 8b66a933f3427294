//! The `fleet-breaker` binary, run as a user would: every subcommand, and
//! one clear line and a non-zero exit for each mistake.

#[path = "../support/mod.rs"]
mod support;

mod cluster;
mod common;
mod config;
mod corrupt;
mod errors;
mod fleet;
mod listening;
mod pipes;
mod running;
mod service;
mod startup;
mod stopping;

use std::process::{Command, Output, Stdio};

use fleet_breaker::{AgentId, CircuitBreaker, RedisStore};
use support::TestRedis;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_fleet-breaker");

/// The binary with no inherited fleet settings.
pub(crate) fn command() -> Command {
    let mut command = Command::new(BIN);
    for var in [
        "REDIS_URL",
        "REDIS_CLUSTER_URLS",
        "REDIS_SENTINEL_URLS",
        "REDIS_SENTINEL_MASTER",
        "FLEET_BREAKER_PREFIX",
        "FLEET_BREAKER_ADMIN_TOKEN",
        "FLEET_BREAKER_WEBHOOKS",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command.stdin(Stdio::null());
    command
}

/// Runs the binary with `args` and no inherited fleet settings.
pub(crate) fn run(args: &[&str]) -> Output {
    command().args(args).output().expect("the binary runs")
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A failure is exactly one `error: ...` line on stderr, exit code 1, no backtrace.
pub(crate) fn assert_one_line_error(output: &Output, expected: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(1), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(
        lines[0].contains(expected),
        "expected {expected:?} in {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

pub(crate) async fn fleet_with_agents(
    redis: &TestRedis,
    prefix: &str,
    names: &[&str],
) -> CircuitBreaker {
    let store = RedisStore::builder(redis.url())
        .prefix(prefix)
        .build()
        .await
        .unwrap();
    let breaker = CircuitBreaker::builder()
        .store(store)
        .local_cache(false)
        .build()
        .unwrap();
    for name in names {
        let agent = AgentId::new(name).unwrap();
        breaker
            .call(&agent, async { Ok::<_, std::io::Error>(()) })
            .await
            .unwrap();
    }
    breaker
}

#[test]
fn help_on_every_subcommand() {
    for sub in [
        "serve", "demo", "status", "watch", "reset", "force", "config",
    ] {
        let output = run(&[sub, "--help"]);
        assert!(output.status.success(), "{sub} --help: {}", stderr(&output));
        assert!(stdout(&output).contains("Usage: fleet-breaker"), "{sub}");
    }
    let top = stdout(&run(&["--help"]));
    for sub in [
        "serve", "demo", "status", "watch", "reset", "force", "config",
    ] {
        assert!(top.contains(sub), "{sub} listed in --help");
    }
}

#[test]
fn commands_that_need_redis_say_how_to_give_it() {
    for args in [
        &["status"][..],
        &["watch"],
        &["reset", "agent-1"],
        &["force", "agent-1", "open"],
        &["serve"],
    ] {
        let output = run(args);
        assert_one_line_error(&output, "REDIS_URL");
    }
}

#[test]
fn a_bad_url_or_unreachable_redis_is_one_line() {
    assert_one_line_error(&run(&["--redis-url", "not a url", "status"]), "Redis URL");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let output = run(&["--redis-url", &url, "status"]);
    assert_one_line_error(&output, "127.0.0.1");
    assert!(
        !stderr(&output).contains("hunter2"),
        "the password is never printed"
    );
}

#[test]
fn bad_arguments_are_refused_before_connecting() {
    let output = run(&["force", "agent-1", "sideways"]);
    assert_eq!(output.status.code(), Some(2), "clap's usage error");
    let output = run(&[
        "--redis-url",
        "redis://127.0.0.1:1",
        "force",
        "agent-1",
        "open",
        "--ttl",
        "soon",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("10m"), "{}", stderr(&output));
    let output = run(&["--redis-url", "redis://127.0.0.1:1", "reset", "bad agent"]);
    assert_one_line_error(&output, "agent id");
    let output = run(&["serve", "--admin-token", "short"]);
    assert_one_line_error(&output, "16 bytes");
}
