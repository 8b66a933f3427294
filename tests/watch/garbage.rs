//! Malformed messages (someone else publishes garbage) are counted, logged
//! and skipped; the watcher lives on.

use std::time::Duration;

use fleet_breaker::CircuitState;
use fleet_breaker::testing::MAX_MESSAGE_BYTES;

use crate::common::{
    agent, append, fast, next, publish, publish_raw, rig, transition, wait_connected, write_hash,
};
use crate::support::{TestRedis, wait_until};

/// Payloads no decoder accepts: not JSON, an empty object, wrong types, a
/// 100 kB string, an agent id with braces, a truncated message.
fn garbage() -> Vec<Vec<u8>> {
    let valid = serde_json::to_string(&transition(&agent("agent-1"), 1)).unwrap();
    vec![
        b"not json at all".to_vec(),
        b"{}".to_vec(),
        br#"{"agent_id":"agent-1","generation":"three","failure_count":[1]}"#.to_vec(),
        br#"{"agent_id":"agent-1","from":"closed","to":"open","generation":-1,"at_ms":1,"reason":"reset","backoff_seconds":1.0,"open_until_ms":0,"failure_count":1.5}"#.to_vec(),
        format!("\"{}\"", "x".repeat(100_000)).into_bytes(),
        valid.replace("agent-1", "agent{1}").into_bytes(),
        valid.as_bytes()[..valid.len() / 2].to_vec(),
        vec![0xff, 0xfe, 0x00, b'{'],
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_both_channels_is_skipped_counted_and_survived() {
    let redis = TestRedis::start().await;
    let rig = rig(&redis, "watch-garbage", fast()).await;
    let mut rx = rig.watcher.subscribe();
    let mut conn = redis.connection().await;
    let payloads = garbage();
    assert!(payloads[4].len() > MAX_MESSAGE_BYTES);

    for payload in &payloads {
        assert_eq!(publish_raw(&mut conn, &rig.keys.events(), payload).await, 1);
        assert_eq!(publish_raw(&mut conn, &rig.keys.counts(), payload).await, 1);
    }
    let a = agent("agent-1");
    let valid = transition(&a, 1);
    publish(&mut conn, &rig.keys, &valid).await;

    assert_eq!(
        next(&mut rx).await,
        valid,
        "a valid message after the garbage still arrives"
    );
    let expected = 2 * payloads.len() as u64;
    wait_until(
        "every bad message is counted",
        Duration::from_secs(2),
        || async { rig.watcher.malformed() == expected },
    )
    .await;
    assert_eq!(rig.cache.state(&a), Some(CircuitState::Open));
    assert!(
        rig.cache.agents().iter().all(|id| *id == a),
        "no entry from garbage"
    );
    assert!(rig.watcher.is_connected());
    assert_eq!(
        rig.watcher.reconnects(),
        0,
        "garbage does not cost the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_stream_entries_are_skipped_during_replay() {
    let redis = TestRedis::start().await;
    let rig = rig(&redis, "watch-garbage-stream", fast()).await;
    let mut rx = rig.watcher.subscribe();
    let mut conn = redis.connection().await;
    let a = agent("agent-1");
    let valid = transition(&a, 1);
    let json = serde_json::to_vec(&valid).unwrap();

    // Only in the stream, while subscribed: pub/sub never carries them, so
    // only the replay after the next reconnection can.
    write_hash(&mut conn, &rig.keys, &valid).await;
    append(&mut conn, &rig.keys, &[("msg", b"garbage")]).await;
    append(&mut conn, &rig.keys, &[("not_msg", &json)]).await;
    append(&mut conn, &rig.keys, &[("msg", &json)]).await;
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    wait_connected(&rig, 1).await;

    assert_eq!(next(&mut rx).await, valid, "replayed past the bad entries");
    assert_eq!(rig.watcher.malformed(), 2);
    assert_eq!(rig.cache.state(&a), Some(CircuitState::Open));
}
