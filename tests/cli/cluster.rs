//! The commands on a Redis Cluster and through Sentinel: `--redis-cluster`
//! and `--redis-sentinel` (or their environment variables) instead of
//! `--redis-url`, and nothing else changes, `serve --webhook` included.

use std::process::Output;
use std::time::Duration;

use fleet_breaker::{AgentId, CircuitBreaker, ForceMode, RedisStore, RedisTarget};

use crate::common::{Hook, Serving, short_demo};
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

    let demo = short_demo(&base).await;
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

/// `serve --redis-cluster ... --webhook URL`: a transition made by another
/// pod on the cluster is POSTed to the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_a_cluster_posts_transitions_to_webhooks() {
    let Some(cluster) = TestCluster::shared().await else {
        return;
    };
    let nodes = cluster.urls().join(",");
    let prefix = unique_prefix("cli_cluster_webhook");
    let store = RedisStore::builder_for(RedisTarget::Cluster(cluster.urls()))
        .prefix(&prefix)
        .build()
        .await
        .expect("connect to the cluster");
    let pod = CircuitBreaker::builder().store(store).build().unwrap();
    let agent = AgentId::new("agent-1").unwrap();
    pod.acquire(&agent).await.unwrap().success().await;

    let hook = Hook::start().await;
    let _serving = Serving::start(
        &["--redis-cluster", &nodes, "--prefix", &prefix],
        &["--webhook", &hook.url],
    )
    .await;

    pod.force(&agent, ForceMode::Open, None).await.unwrap();
    let body = hook.first(Duration::from_secs(10)).await;
    assert_eq!(
        (body["agent_id"].as_str(), body["to"].as_str()),
        (Some("agent-1"), Some("forced_open"))
    );
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
