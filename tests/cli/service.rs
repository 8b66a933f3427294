//! `serve` with webhooks, and secrets kept out of `Debug` and `--help`.

use std::process::{Command, Stdio};
use std::time::Duration;

use fleet_breaker::AgentId;

use crate::support::{self, TestRedis};
use crate::{BIN, assert_one_line_error, fleet_with_agents, run, stdout};

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
        "--webhook",
        "https://bot:hookpass@alerts.example.com/hook",
    ])
    .unwrap();
    let debug = format!("{cli:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("supersecret") && !debug.contains("hookpass"),
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
