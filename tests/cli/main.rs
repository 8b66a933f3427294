//! The `fleet-breaker` binary, run as a user would: every subcommand, and
//! one clear line and a non-zero exit for each mistake.

#[path = "../support/mod.rs"]
mod support;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use fleet_breaker::{AgentId, CircuitBreaker, RedisStore};
use support::TestRedis;

const BIN: &str = env!("CARGO_BIN_EXE_fleet-breaker");

/// Runs the binary with `args` and no inherited fleet settings.
fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("REDIS_URL")
        .env_remove("FLEET_BREAKER_PREFIX")
        .env_remove("FLEET_BREAKER_ADMIN_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A failure is exactly one `error: ...` line on stderr, exit code 1, no backtrace.
fn assert_one_line_error(output: &Output, expected: &str) {
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

async fn fleet_with_agents(redis: &TestRedis, prefix: &str, names: &[&str]) -> CircuitBreaker {
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
    for sub in ["serve", "demo", "status", "watch", "reset", "force"] {
        let output = run(&[sub, "--help"]);
        assert!(output.status.success(), "{sub} --help: {}", stderr(&output));
        assert!(stdout(&output).contains("Usage: fleet-breaker"), "{sub}");
    }
    let top = stdout(&run(&["--help"]));
    for sub in ["serve", "demo", "status", "watch", "reset", "force"] {
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

#[tokio::test]
async fn status_reset_and_force_on_a_fleet() {
    let redis = TestRedis::start().await;
    let prefix = support::unique_prefix("cli_admin");
    let _pod = fleet_with_agents(&redis, &prefix, &["agent-1", "agent-2"]).await;
    let url = redis.url();
    let base = ["--redis-url", url.as_str(), "--prefix", prefix.as_str()];
    let with = |rest: &[&str]| -> Output {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(rest);
        run(&args)
    };

    let output = with(&["status"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    assert!(table.starts_with("AGENT"), "{table}");
    assert!(
        table.contains("agent-1") && table.contains("agent-2"),
        "{table}"
    );
    assert!(table.contains("2 agents: 2 healthy"), "{table}");

    let output = with(&["force", "agent-1", "open", "--ttl", "10m"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("forced agent-1: closed -> forced_open for 10m"),
        "{}",
        stdout(&output)
    );

    let output = with(&["status", "agent-1", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["state"], "forced_open");

    let output = with(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["open_circuits"], 1);

    let output = with(&["reset", "agent-1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        "reset agent-1: forced_open -> closed"
    );

    assert_one_line_error(&with(&["reset", "agent-404"]), "unknown agent agent-404");
    assert_one_line_error(&with(&["status", "agent-404"]), "unknown agent agent-404");
}

#[tokio::test]
async fn watch_prints_each_transition_as_it_happens() {
    let redis = TestRedis::start().await;
    let prefix = support::unique_prefix("cli_watch");
    let pod = fleet_with_agents(&redis, &prefix, &["agent-1"]).await;
    let mut child = Command::new(BIN)
        .args([
            "--redis-url",
            &redis.url(),
            "--prefix",
            &prefix,
            "watch",
            "--json",
            "--duration",
            "3s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for "watching", said once the subscription is up.
    let stderr_pipe = child.stderr.take().unwrap();
    let said = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stderr_pipe).lines();
        lines.next().and_then(Result::ok).unwrap_or_default()
    })
    .await
    .unwrap();
    assert!(
        said.starts_with("watching transitions on redis at"),
        "{said}"
    );
    let agent = AgentId::new("agent-1").unwrap();
    pod.force(&agent, fleet_breaker::ForceMode::Open, None)
        .await
        .unwrap();
    pod.reset(&agent).await.unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let moves: Vec<(String, String)> = lines
        .iter()
        .map(|t| {
            (
                t["from"].as_str().unwrap().to_owned(),
                t["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("closed".to_owned(), "forced_open".to_owned()),
            ("forced_open".to_owned(), "closed".to_owned())
        ]
    );
}

#[test]
fn demo_runs_on_the_embedded_store_and_ends_by_itself() {
    let output = run(&[
        "demo",
        "--duration",
        "4s",
        "--bind",
        "127.0.0.1:0",
        "--cycle",
        "4s",
        "--rate",
        "50",
    ]);
    let out = stdout(&output);
    assert!(output.status.success(), "{}\n{}", out, stderr(&output));
    assert!(
        out.contains("on the embedded store"),
        "says which store: {out}"
    );
    assert!(out.contains("listening on http://127.0.0.1:"), "{out}");
    assert!(out.contains("tasks routed"), "{out}");
    assert!(
        out.contains("agent-1 closed -> open"),
        "agent-1 dies within its cycle: {out}"
    );
    assert!(
        out.contains("AGENT") && out.contains("agent-3"),
        "ends with the status table: {out}"
    );
}

#[tokio::test]
async fn demo_on_redis_shares_state_with_status() {
    let redis = TestRedis::start().await;
    let prefix = support::unique_prefix("cli_demo");
    let url = redis.url();
    let output = tokio::task::spawn_blocking({
        let (url, prefix) = (url.clone(), prefix.clone());
        move || {
            run(&[
                "--redis-url",
                &url,
                "--prefix",
                &prefix,
                "demo",
                "--no-serve",
                "--duration",
                "3s",
                "--pods",
                "2",
                "--cycle",
                "2s",
            ])
        }
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("on redis at redis://127.0.0.1"),
        "{}",
        stdout(&output)
    );
    let status = run(&["--redis-url", &url, "--prefix", &prefix, "status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    // agent-1 is down for a second of every two, so the others were called too.
    assert!(json["total_agents"].as_u64().unwrap() >= 2, "{json}");
    assert!(json["routing_events"].as_u64().unwrap() > 0, "{json}");
}

#[test]
fn a_bad_webhook_url_is_refused_at_start() {
    let redis = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(TestRedis::start());
    let output = run(&[
        "--redis-url",
        &redis.url(),
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--webhook",
        "ftp://example.com/hook",
    ]);
    assert_one_line_error(&output, "http");
}

/// `serve --webhook URL`: a transition made by another pod is POSTed to the
/// URL, and the delivery shows in `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_posts_transitions_to_webhooks_and_counts_them() {
    use std::io::{BufRead, BufReader};
    use std::sync::{Arc, Mutex};

    let redis = TestRedis::start().await;
    let prefix = support::unique_prefix("cli_webhook");
    let pod = fleet_with_agents(&redis, &prefix, &["agent-1"]).await;

    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let received = Arc::clone(&received);
            move |axum::Json(body): axum::Json<serde_json::Value>| async move {
                received.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let mut child = Command::new(BIN)
        .args([
            "--redis-url",
            &redis.url(),
            "--prefix",
            &prefix,
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--webhook",
            &hook,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout_pipe = child.stdout.take().unwrap();
    let addr = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout_pipe).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        std::thread::spawn(move || lines.for_each(drop));
        first
    })
    .await
    .unwrap();
    let addr = addr
        .split("listening on ")
        .nth(1)
        .unwrap_or_else(|| panic!("serve says where it listens: {addr:?}"))
        .to_owned();

    pod.force(
        &AgentId::new("agent-1").unwrap(),
        fleet_breaker::ForceMode::Open,
        None,
    )
    .await
    .unwrap();
    support::wait_until(
        "the webhook receives the transition",
        Duration::from_secs(5),
        || {
            let received = Arc::clone(&received);
            async move { !received.lock().unwrap().is_empty() }
        },
    )
    .await;
    let body = received.lock().unwrap()[0].clone();
    assert_eq!(
        (body["agent_id"].as_str(), body["to"].as_str()),
        (Some("agent-1"), Some("forced_open"))
    );

    let metrics = reqwest::get(format!("{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line =
        format!("fleet_breaker_webhook_deliveries_total{{url=\"{hook}\",outcome=\"delivered\"}} 1");
    assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn debug_of_a_parsed_command_line_hides_the_token_and_the_password() {
    use clap::Parser;
    let cli = fleet_breaker::cli::Cli::try_parse_from([
        "fleet-breaker",
        "--redis-url",
        "redis://app:hunter2@redis.internal:6379",
        "serve",
        "--admin-token",
        "supersecret-0123456789",
    ])
    .unwrap();
    let debug = format!("{cli:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("supersecret"),
        "{debug}"
    );
    assert!(
        debug.contains("redis://app:set@redis.internal:6379") && debug.contains("Secret(set)"),
        "{debug}"
    );
}

#[test]
fn help_never_shows_secret_environment_values() {
    let output = Command::new(BIN)
        .args(["serve", "--help"])
        .env("FLEET_BREAKER_ADMIN_TOKEN", "supersecret-0123456789")
        .env("REDIS_URL", "redis://app:hunter2@redis.internal:6379")
        .output()
        .unwrap();
    let help = stdout(&output);
    assert!(help.contains("FLEET_BREAKER_ADMIN_TOKEN"), "{help}");
    assert!(
        !help.contains("supersecret") && !help.contains("hunter2"),
        "{help}"
    );
}
