//! `config AGENT`: show, set (keeping the other stored settings), clear;
//! the flags' errors; and `status` showing the settings.

use std::process::Output;

use crate::support::{self, TestRedis};
use crate::{assert_one_line_error, fleet_with_agents, run, stderr, stdout};

#[test]
fn config_help_lists_every_setting_flag_and_clear() {
    let output = run(&["config", "--help"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let help = stdout(&output);
    for flag in [
        "--failure-threshold",
        "--failure-rate",
        "--slow-call-duration-ms",
        "--slow-call-rate",
        "--window-ms",
        "--minimum-calls",
        "--min-reporting-pods",
        "--backoff-jitter",
        "--half-open-max-calls",
        "--base-backoff-ms",
        "--max-backoff-ms",
        "--recovery-timeout-ms",
        "--backoff-multiplier",
        "--clear",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
    assert!(stdout(&run(&["--help"])).contains("config"));
}

#[test]
fn clear_with_a_setting_or_a_bad_number_is_refused_by_the_parser() {
    let output = run(&["config", "agent-1", "--clear", "--failure-rate", "0.5"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--clear"), "{}", stderr(&output));
    let output = run(&["config", "agent-1", "--failure-threshold", "2.5"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--failure-threshold"));
}

#[test]
fn config_needs_redis_and_says_how_to_give_it() {
    assert_one_line_error(&run(&["config", "agent-1"]), "REDIS_URL");
    assert_one_line_error(
        &run(&["config", "agent-1", "--failure-rate", "0.5"]),
        "REDIS_URL",
    );
}

/// `fleet-breaker --redis-url URL --prefix PREFIX <rest>`.
fn with(redis: &TestRedis, prefix: &str, rest: &[&str]) -> Output {
    let url = redis.url();
    let mut args = vec!["--redis-url", url.as_str(), "--prefix", prefix];
    args.extend_from_slice(rest);
    run(&args)
}

#[tokio::test]
async fn an_out_of_range_value_names_the_setting_its_range_and_the_flag() {
    let redis = TestRedis::start().await;
    let prefix = support::unique_prefix("cli_config_bad");
    let _pod = fleet_with_agents(&redis, &prefix, &["agent-1"]).await;
    let output = with(
        &redis,
        &prefix,
        &["config", "agent-1", "--failure-rate", "1.5"],
    );
    assert_one_line_error(&output, "failure_rate_threshold");
    assert!(
        stderr(&output).contains("--failure-rate"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("at most 1"), "{}", stderr(&output));
    let output = with(
        &redis,
        &prefix,
        &["config", "agent-1", "--max-backoff-ms", "10"],
    );
    assert_one_line_error(&output, "max_backoff_ms");
    assert!(
        stderr(&output).contains("--max-backoff-ms"),
        "{}",
        stderr(&output)
    );
    let output = with(&redis, &prefix, &["config", "agent-404"]);
    assert_one_line_error(&output, "unknown agent agent-404");
}

#[tokio::test]
async fn config_sets_keeps_the_others_shows_and_clears_and_status_shows_them() {
    let redis = TestRedis::start().await;
    let prefix = support::unique_prefix("cli_config");
    let _pod = fleet_with_agents(&redis, &prefix, &["agent-1", "agent-2"]).await;

    let output = with(&redis, &prefix, &["config", "agent-1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        "agent-1: no settings stored; it follows each pod's config"
    );

    let output = with(
        &redis,
        &prefix,
        &[
            "config",
            "agent-1",
            "--failure-rate",
            "0.5",
            "--window-ms",
            "20000",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        "configured agent-1: failure_rate_threshold=0.5 window_ms=20000"
    );
    // Another flag later keeps the ones stored.
    let output = with(
        &redis,
        &prefix,
        &["config", "agent-1", "--failure-threshold", "3"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        "configured agent-1: failure_threshold=3 failure_rate_threshold=0.5 window_ms=20000"
    );
    let output = with(&redis, &prefix, &["config", "agent-1", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["settings"]["failure_threshold"], 3);
    assert_eq!(json["settings"]["window_ms"], 20000);

    let output = with(&redis, &prefix, &["status"]);
    let table = stdout(&output);
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("WINDOW") && header.contains("SETTINGS"),
        "{table}"
    );
    let row = table.lines().find(|l| l.starts_with("agent-1")).unwrap();
    assert!(row.contains("0 calls 0% failed 0% slow in 20s"), "{table}");
    assert!(row.contains("failure_threshold=3"), "{table}");
    let other = table.lines().find(|l| l.starts_with("agent-2")).unwrap();
    assert!(other.trim_end().ends_with('-'), "{table}");
    let output = with(&redis, &prefix, &["status", "agent-1", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["settings"]["failure_rate_threshold"], 0.5);
    assert_eq!(json["window"]["window_ms"], 20000);

    let output = with(&redis, &prefix, &["config", "agent-1", "--clear"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        "cleared agent-1: no settings stored; it follows each pod's config"
    );
    let table = stdout(&with(&redis, &prefix, &["status"]));
    assert!(!table.contains("SETTINGS"), "{table}");
}
