//! The commands on a Redis Cluster and through Sentinel: `--redis-cluster`
//! and `--redis-sentinel` (or their environment variables) instead of
//! `--redis-url`, and nothing else changes, `serve --webhook` included.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_breaker::{AgentId, CircuitBreaker, ForceMode, RedisStore, RedisTarget};

use crate::support::cluster::TestCluster;
use crate::support::sentinel::TestSentinel;
use crate::support::{unique_prefix, wait_until};
use crate::{BIN, assert_one_line_error, run, stderr, stdout};

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

/// Kills and reaps the `serve` child, even when the test fails.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
            "--redis-cluster",
            &nodes,
            "--prefix",
            &prefix,
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--webhook",
            &hook,
        ])
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_URLS")
        .env_remove("REDIS_SENTINEL_URLS")
        .env_remove("REDIS_SENTINEL_MASTER")
        .env_remove("FLEET_BREAKER_WEBHOOKS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout_pipe = child.stdout.take().unwrap();
    let _serving = Serving(child);
    // `serve` says where it listens once its consumer groups exist.
    let first = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout_pipe).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        std::thread::spawn(move || lines.for_each(drop));
        first
    })
    .await
    .unwrap();
    assert!(first.contains("listening on"), "serve started: {first:?}");

    pod.force(&agent, ForceMode::Open, None).await.unwrap();
    wait_until(
        "the webhook receives the transition",
        Duration::from_secs(10),
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
