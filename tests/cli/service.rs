//! `serve` with webhooks, and secrets kept out of `Debug` and `--help`.

use std::time::Duration;

use fleet_breaker::AgentId;

use crate::common::{Hook, Serving};
use crate::support::{self, TestRedis};
use crate::{assert_one_line_error, command, fleet_with_agents, run, stdout};

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
    let redis = TestRedis::start().await;
    let prefix = support::unique_prefix("cli_webhook");
    let pod = fleet_with_agents(&redis, &prefix, &["agent-1"]).await;

    let hook = Hook::start().await;
    let serving = Serving::start(
        &["--redis-url", &redis.url(), "--prefix", &prefix],
        &["--webhook", &hook.url],
    )
    .await;

    pod.force(
        &AgentId::new("agent-1").unwrap(),
        fleet_breaker::ForceMode::Open,
        None,
    )
    .await
    .unwrap();
    let body = hook.first(Duration::from_secs(5)).await;
    assert_eq!(
        (body["agent_id"].as_str(), body["to"].as_str()),
        (Some("agent-1"), Some("forced_open"))
    );

    let metrics = reqwest::get(format!("{}/metrics", serving.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!(
        "fleet_breaker_webhook_deliveries_total{{url=\"{}\",outcome=\"delivered\"}} 1",
        hook.url
    );
    assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
}

#[test]
fn a_mistaken_webhook_option_is_refused_before_connecting_without_its_secret() {
    for (hook, expected) in [
        (
            "http://127.0.0.1:9/h secret=hunter2hunter2hunter2 format=teams",
            "unknown format \"teams\"",
        ),
        ("http://127.0.0.1:9/h secret=hunter2", "at least 16"),
        (
            "http://127.0.0.1:9/h to=opened",
            "\"opened\" is not a state",
        ),
    ] {
        // Nothing listens on port 1: the check comes before any connection.
        let output = run(&[
            "--redis-url",
            "redis://127.0.0.1:1",
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--webhook",
            hook,
        ]);
        assert_one_line_error(&output, expected);
        assert!(!crate::stderr(&output).contains("hunter2"), "{hook}");
    }
}

/// `--webhook 'URL format=slack to=forced_open'`: Slack messages, and the
/// transitions the filter leaves out are counted as filtered, not POSTed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_posts_slack_messages_and_counts_the_filtered_transitions() {
    let redis = TestRedis::start().await;
    let prefix = support::unique_prefix("cli_webhook_slack");
    let pod = fleet_with_agents(&redis, &prefix, &["agent-1"]).await;
    let hook = Hook::start().await;
    let spec = format!("{} format=slack to=forced_open", hook.url);
    let serving = Serving::start(
        &["--redis-url", &redis.url(), "--prefix", &prefix],
        &["--webhook", &spec],
    )
    .await;

    let agent = AgentId::new("agent-1").unwrap();
    pod.force(&agent, fleet_breaker::ForceMode::Open, None)
        .await
        .unwrap();
    pod.force(&agent, fleet_breaker::ForceMode::Auto, None)
        .await
        .unwrap();
    let metrics_url = format!("{}/metrics", serving.addr);
    let counted = |outcome: &str| {
        format!(
            "fleet_breaker_webhook_deliveries_total{{url=\"{}\",outcome=\"{outcome}\"}} 1",
            hook.url
        )
    };
    support::wait_until(
        "one delivered, one filtered",
        Duration::from_secs(5),
        || {
            let metrics_url = metrics_url.clone();
            let (delivered, filtered) = (counted("delivered"), counted("filtered"));
            async move {
                let metrics = reqwest::get(metrics_url)
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                metrics.contains(&delivered) && metrics.contains(&filtered)
            }
        },
    )
    .await;
    let bodies = hook.all();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let text = bodies[0]["text"].as_str().unwrap();
    assert_eq!(bodies[0].as_object().unwrap().len(), 1, "{bodies:?}");
    assert!(text.contains("`agent-1` closed -> *forced_open*"), "{text}");
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
        "https://bot:hookpass@alerts.example.com/hook secret=hooksecret0123456789",
    ])
    .unwrap();
    let debug = format!("{cli:?}");
    assert!(
        !debug.contains("hunter2")
            && !debug.contains("supersecret")
            && !debug.contains("hookpass")
            && !debug.contains("hooksecret"),
        "{debug}"
    );
    assert!(
        debug.contains("redis://app:set@redis.internal:6379") && debug.contains("Secret(set)"),
        "{debug}"
    );
}

#[test]
fn help_never_shows_secret_environment_values() {
    let output = command()
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

/// An agent tripped before the census existed (its field missing, as
/// after an upgrade): `serve` reads every agent once at start, which puts
/// the field right, so its counts are the fleet's without anyone asking
/// for the full listing first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_puts_the_census_right_at_start() {
    let redis = TestRedis::start().await;
    let prefix = support::unique_prefix("cli_census");
    let pod = fleet_with_agents(&redis, &prefix, &["agent-1", "agent-2"]).await;
    pod.force(
        &AgentId::new("agent-1").unwrap(),
        fleet_breaker::ForceMode::Open,
        None,
    )
    .await
    .unwrap();
    let mut conn = redis.connection().await;
    redis::cmd("DEL")
        .arg(format!("{prefix}:not_closed"))
        .query_async::<()>(&mut conn)
        .await
        .unwrap();

    let serving = Serving::start(&["--redis-url", &redis.url(), "--prefix", &prefix], &[]).await;

    let url = format!("{}/api/circuit-breaker/health/summary", serving.addr);
    support::wait_until(
        "the counts show the open agent",
        Duration::from_secs(5),
        || {
            let url = url.clone();
            async move {
                let summary: serde_json::Value =
                    reqwest::get(url).await.unwrap().json().await.unwrap();
                summary["open_circuits"] == 1 && summary["total_agents"] == 2
            }
        },
    )
    .await;
}
