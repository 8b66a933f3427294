//! A reader that goes away (`fleet-breaker status | head -1`) ends a
//! command quietly: no panic, no "Broken pipe", exit code 0.

use std::process::{Child, Output, Stdio};
use std::time::Duration;

use fleet_breaker::{AgentId, ForceMode};

use crate::support::{self, TestRedis};
use crate::{command, fleet_with_agents, stderr};

/// Starts the binary with a stdout whose reading end is already closed.
fn spawn_with_closed_stdout(args: &[&str]) -> Child {
    let mut child = command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    drop(child.stdout.take());
    child
}

fn assert_quiet_end(args: &[&str], output: &Output) {
    let err = stderr(output);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{args:?}: {err}"
    );
    assert_eq!(output.status.code(), Some(0), "{args:?}: {err}");
    assert_eq!(err, "", "{args:?}: nothing on stderr");
}

#[tokio::test]
async fn status_reset_and_force_end_quietly_when_stdout_is_closed() {
    let redis = TestRedis::start().await;
    let prefix = support::unique_prefix("cli_pipes");
    let _pod = fleet_with_agents(&redis, &prefix, &["agent-1", "agent-2"]).await;
    let url = redis.url();
    for rest in [
        &["status"][..],
        &["status", "--json"],
        &["status", "agent-1"],
        &["status", "agent-1", "--json"],
        &["force", "agent-2", "open"],
        &["reset", "agent-2"],
    ] {
        let mut args = vec!["--redis-url", url.as_str(), "--prefix", prefix.as_str()];
        args.extend_from_slice(rest);
        let child = spawn_with_closed_stdout(&args);
        let output = child.wait_with_output().expect("the binary ends");
        assert_quiet_end(&args, &output);
    }
}

#[tokio::test]
async fn watch_ends_quietly_at_its_first_line_when_stdout_is_closed() {
    let redis = TestRedis::start().await;
    let prefix = support::unique_prefix("cli_pipes_watch");
    let pod = fleet_with_agents(&redis, &prefix, &["agent-1"]).await;
    let url = redis.url();
    let args = [
        "--redis-url",
        url.as_str(),
        "--prefix",
        prefix.as_str(),
        "watch",
        "--duration",
        "60s",
    ];
    let mut child = spawn_with_closed_stdout(&args);
    // "watching ..." on stderr once the subscription is up.
    let stderr_pipe = child.stderr.take().expect("stderr");
    let said = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stderr_pipe).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        (first, rest)
    });
    let agent = AgentId::new("agent-1").expect("valid id");
    // Transitions until watch has tried to print one (and ended), bounded.
    let (pod, agent) = (&pod, &agent);
    let status = support::wait_for(
        "watch ends at a closed stdout",
        Duration::from_secs(20),
        || {
            let ended = child.try_wait().expect("wait");
            async move {
                if ended.is_none() {
                    pod.force(agent, ForceMode::Open, None)
                        .await
                        .expect("force");
                    pod.reset(agent).await.expect("reset");
                }
                ended
            }
        },
    )
    .await;
    let (first, rest) = said.await.expect("stderr read");
    assert!(first.starts_with("watching transitions"), "{first}");
    assert!(rest.is_empty(), "nothing more on stderr: {rest:?}");
    assert_eq!(status.code(), Some(0), "{first} {rest:?}");
}
