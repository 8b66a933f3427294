//! Well-formed transitions the store does not confirm (forged: an unknown
//! agent, an impossible generation) are counted and never delivered.

use crate::common::{agent, fast, next, publish, publish_raw, rig, transition};
use crate::support::{TestRedis, wait_until};

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_the_store_does_not_confirm_are_counted_not_delivered() {
    let redis = TestRedis::start().await;
    let rig = rig(&redis, "watch-unverified", fast()).await;
    let mut rx = rig.watcher.subscribe();
    let mut conn = redis.connection().await;
    let (known, unknown) = (agent("agent-known"), agent("agent-unknown"));
    publish(&mut conn, &rig.keys, &transition(&known, 1)).await;
    assert_eq!(next(&mut rx).await.generation, 1);

    // No hash for this agent; a generation the known one never reached.
    for forged in [
        transition(&unknown, 1),
        transition(&known, 9_007_199_254_740_991),
    ] {
        let json = serde_json::to_vec(&forged).unwrap();
        assert_eq!(publish_raw(&mut conn, &rig.keys.events(), &json).await, 1);
    }
    let real = transition(&known, 2);
    publish(&mut conn, &rig.keys, &real).await;

    assert_eq!(next(&mut rx).await, real, "the forged ones are skipped");
    wait_until("both are counted", Duration::from_secs(3), || async {
        rig.watcher.unverified() == 2
    })
    .await;
    assert_eq!(rig.cache.generation(&known), Some(2));
    assert_eq!(rig.cache.generation(&unknown), None, "no entry for it");
    assert_eq!(rig.watcher.malformed(), 0);
}
