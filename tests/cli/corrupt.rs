//! `status`, `reset` and `force` with one corrupt agent in Redis: status
//! reports it, naming the field, beside the others; reset and force repair it.

use std::process::Output;

use redis::AsyncCommands;

use crate::support::{self, TestRedis};
use crate::{fleet_with_agents, run, stderr, stdout};

#[tokio::test]
async fn status_reports_a_corrupt_agent_and_reset_and_force_repair_it() {
    let redis = TestRedis::start().await;
    let corruptions = [
        ("state", Some("bogus")),
        ("failure_count", Some("-5")),
        ("failure_count", Some("abc")),
        ("generation", Some("99999999999999999999")),
        ("backoff_ms", None),
    ];
    for (n, (field, value)) in corruptions.into_iter().enumerate() {
        let prefix = support::unique_prefix("cli_corrupt");
        let _pod = fleet_with_agents(&redis, &prefix, &["agent-0001", "agent-2"]).await;
        let mut conn = redis.connection().await;
        let key = format!("{prefix}:{{agent-0001}}:state");
        match value {
            Some(value) => conn.hset::<_, _, _, ()>(&key, field, value).await.unwrap(),
            None => conn.hdel::<_, _, ()>(&key, field).await.unwrap(),
        }
        let url = redis.url();
        let with = |rest: &[&str]| -> Output {
            let mut args = vec!["--redis-url", url.as_str(), "--prefix", prefix.as_str()];
            args.extend_from_slice(rest);
            run(&args)
        };
        let case = format!("{field}={value:?}");

        let output = with(&["status"]);
        assert!(output.status.success(), "{case}: {}", stderr(&output));
        let table = stdout(&output);
        assert!(
            table.contains(&format!("corrupt ({field})")),
            "{case}: {table}"
        );
        assert!(table.contains("agent-2"), "{case}: {table}");
        assert!(table.contains("2 agents: 1 healthy"), "{case}: {table}");
        assert!(table.contains("1 corrupt"), "{case}: {table}");

        let output = with(&["status", "agent-0001"]);
        assert!(output.status.success(), "{case}: {}", stderr(&output));
        assert!(
            stdout(&output).contains(&format!("field {field} is")),
            "{case}: {}",
            stdout(&output)
        );

        let repair: &[&str] = if n % 2 == 0 {
            &["reset", "agent-0001"]
        } else {
            &["force", "agent-0001", "closed"]
        };
        let output = with(repair);
        assert!(output.status.success(), "{case}: {}", stderr(&output));
        let output = with(&["status", "agent-0001", "--json"]);
        assert!(output.status.success(), "{case}: {}", stderr(&output));
        let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        let expected = if n % 2 == 0 {
            "closed"
        } else {
            "forced_closed"
        };
        assert_eq!(json["state"], expected, "{case}: repaired");
    }
}
