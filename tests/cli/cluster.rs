//! The commands on a Redis Cluster and through Sentinel: `--redis-cluster`
//! and `--redis-sentinel` (or their environment variables) instead of
//! `--redis-url`, and nothing else changes.

use std::process::Output;

use crate::support::cluster::TestCluster;
use crate::support::sentinel::TestSentinel;
use crate::support::unique_prefix;
use crate::{assert_one_line_error, run, stderr, stdout};

fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_str(&stdout(output)).unwrap()
}

#[tokio::test]
async fn demo_status_force_and_reset_on_a_cluster() {
    let Some(cluster) = TestCluster::shared().await else {
        return;
    };
    let nodes = cluster.urls().join(",");
    let prefix = unique_prefix("cli_cluster");
    let base = [
        "--redis-cluster",
        nodes.as_str(),
        "--prefix",
        prefix.as_str(),
    ];
    let with = |rest: &[&str]| -> Output {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(rest);
        run(&args)
    };

    let demo = tokio::task::spawn_blocking({
        let (nodes, prefix) = (nodes.clone(), prefix.clone());
        move || {
            run(&[
                "--redis-cluster",
                &nodes,
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
    assert!(demo.status.success(), "{}", stderr(&demo));
    assert!(
        stdout(&demo).contains("on the redis cluster at"),
        "{}",
        stdout(&demo)
    );

    let health = json(&with(&["status", "--json"]));
    assert!(health["total_agents"].as_u64().unwrap() >= 2, "{health}");
    let output = with(&["force", "agent-1", "open"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        json(&with(&["status", "agent-1", "--json"]))["state"],
        "forced_open"
    );
    let output = with(&["reset", "agent-1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        json(&with(&["status", "agent-1", "--json"]))["state"],
        "closed"
    );
}

#[tokio::test]
async fn webhooks_on_a_cluster_are_refused_in_one_line() {
    let Some(cluster) = TestCluster::shared().await else {
        return;
    };
    let nodes = cluster.urls().join(",");
    let output = tokio::task::spawn_blocking(move || {
        run(&[
            "--redis-cluster",
            &nodes,
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--webhook",
            "http://127.0.0.1:9/hook",
        ])
    })
    .await
    .unwrap();
    assert_one_line_error(&output, "not supported yet");
}

#[test]
fn one_redis_at_a_time() {
    let output = run(&[
        "--redis-url",
        "redis://127.0.0.1:1",
        "--redis-cluster",
        "redis://127.0.0.1:2",
        "status",
    ]);
    assert_one_line_error(&output, "give one Redis");
    let output = run(&["--redis-sentinel", "redis://127.0.0.1:1", "status"]);
    assert_one_line_error(&output, "master name");
}

#[tokio::test]
async fn status_through_sentinel() {
    let Some(sentinel) = TestSentinel::start().await else {
        return;
    };
    let sentinels = sentinel.sentinel_urls().join(",");
    let prefix = unique_prefix("cli_sentinel");
    let health = json(&run(&[
        "--redis-sentinel",
        &sentinels,
        "--sentinel-master",
        crate::support::sentinel::MASTER_NAME,
        "--prefix",
        &prefix,
        "status",
        "--json",
    ]));
    assert_eq!(health["total_agents"], 0, "{health}");
}
