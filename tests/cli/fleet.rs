//! Commands against a fleet in Redis: status, reset, force, watch, and the
//! demo's pods sharing their state.

use std::process::{Output, Stdio};

use fleet_breaker::AgentId;

use crate::common::short_demo;
use crate::support::{self, TestRedis};
use crate::{assert_one_line_error, command, fleet_with_agents, run, stderr, stdout};

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
    let mut child = command()
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
    let output = short_demo(&["--redis-url", &url, "--prefix", &prefix]).await;
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
