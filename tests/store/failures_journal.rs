//! A malformed entry of the failures stream (written by something else, or
//! by hand) is skipped and counted; it never hides the other records.

use fleet_breaker::store::{FailureRecord, RoutingJournal};
use redis::AsyncCommands;

use crate::corrupt::{agent, fleet};
use crate::support::TestRedis;

#[tokio::test]
async fn malformed_failure_records_are_skipped() {
    let redis = TestRedis::start().await;
    let mut conn = redis.connection().await;
    let (store, _breaker, prefix) = fleet(&redis, "corrupt-journal").await;
    let key = format!("{prefix}:failures");
    let record = |task: &str| FailureRecord {
        task_id: task.to_owned(),
        agent_id: agent("good"),
        reason: "boom".to_owned(),
        time_ms: 1_700_000_000_000,
        instance_id: "pod-a".to_owned(),
    };
    store.push_failure(&record("t1"), 100).await.unwrap();
    let _: String = conn.xadd(&key, "*", &[("garbage", "only")]).await.unwrap();
    store.push_failure(&record("t2"), 100).await.unwrap();
    let _: String = conn
        .xadd(
            &key,
            "*",
            &[
                ("task_id", "t"),
                ("agent_id", "good"),
                ("reason", "r"),
                ("time_ms", "abc"),
                ("instance_id", "p"),
            ],
        )
        .await
        .unwrap();
    let _: String = conn
        .xadd(
            &key,
            "*",
            &[
                ("task_id", "t"),
                ("agent_id", "bad agent id"),
                ("reason", "r"),
                ("time_ms", "1"),
                ("instance_id", "p"),
            ],
        )
        .await
        .unwrap();
    store.push_failure(&record("t3"), 100).await.unwrap();

    let tasks = |records: Vec<FailureRecord>| -> Vec<String> {
        records.into_iter().map(|r| r.task_id).collect()
    };
    // The newest three readable records, past the three malformed ones.
    let recent = store
        .recent_failures(3)
        .await
        .expect("malformed entries skipped");
    assert_eq!(tasks(recent), ["t3", "t2", "t1"]);
    let recent = store.recent_failures(2).await.unwrap();
    assert_eq!(tasks(recent), ["t3", "t2"]);
    let skipped = store.failures_skipped();
    let recent = store.recent_failures(20).await.unwrap();
    assert_eq!(tasks(recent), ["t3", "t2", "t1"]);
    assert_eq!(
        store.failures_skipped() - skipped,
        3,
        "each malformed entry counted"
    );
}
