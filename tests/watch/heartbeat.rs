//! The fleet heartbeat: one watcher of a fleet, holding a lease, publishes
//! on `PREFIX:heartbeat`; every watcher hears it and pings nothing, and
//! every cache stays trusted.

use std::time::{Duration, Instant};

use fleet_breaker::RedisStore;

use crate::common::{Rig, fast, spawn, wait_connected};
use crate::support::{TestRedis, init_tracing, unique_prefix, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_watcher_of_a_fleet_beats_and_no_watcher_pings() {
    let redis = TestRedis::start().await;
    if !redis.is_owned() {
        eprintln!("skipped: counts the server's commands, which others sharing REDIS_URL send too");
        return;
    }
    init_tracing();
    let prefix = unique_prefix("watch-heartbeat");
    let mut fleet: Vec<(RedisStore, Rig)> = Vec::new();
    for _ in 0..3 {
        let store = RedisStore::builder(redis.url())
            .prefix(prefix.clone())
            .timeout(Duration::from_millis(200))
            .build()
            .await
            .expect("connect");
        let rig = spawn(&store, fast());
        fleet.push((store, rig));
    }
    for (_, rig) in &fleet {
        wait_connected(rig, 0).await;
    }
    let lease = fleet[0].1.keys.heartbeat_lease();
    let mut conn = redis.connection().await;
    wait_until(
        "a watcher holds the heartbeat lease",
        Duration::from_secs(5),
        || {
            let mut conn = conn.clone();
            let lease = lease.clone();
            async move {
                let holder: Option<String> = redis::cmd("HGET")
                    .arg(&lease)
                    .arg("holder")
                    .query_async(&mut conn)
                    .await
                    .expect("HGET");
                holder.is_some()
            }
        },
    )
    .await;

    // One second of a healthy fleet, pinged every 100 ms before heartbeats
    // (3 watchers x 10 pings).
    redis.reset_stats().await;
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(1) {
        for (_, rig) in &fleet {
            assert!(rig.cache.is_subscribed(), "every cache stays trusted");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = redis.command_stats().await;
    let count = |name: &str| stats.get(name).copied().unwrap_or(0);
    // A watcher pings (and tries the lease) only after 150 ms without a
    // word: a beat that late on a busy machine allows a few.
    let (pings, beats) = (count("ping"), count("evalsha"));
    assert!(
        pings <= 3,
        "a subscription that hears the heartbeat is not pinged: {pings} pings ({stats:?})"
    );
    assert!(
        (5..=16).contains(&beats),
        "one holder beats every 100 ms, about 10 a second: {beats} ({stats:?})"
    );
    let holder: Option<String> = redis::cmd("HGET")
        .arg(&lease)
        .arg("holder")
        .query_async(&mut conn)
        .await
        .expect("HGET");
    assert!(holder.is_some(), "the lease is held");
}
