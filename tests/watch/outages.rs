//! Lost subscriptions: killed connections, a restarted Redis, a Redis that
//! stops answering. The watcher notices, stops the cache trusting it,
//! reconnects, replays what it missed and carries on.

use std::time::{Duration, Instant};

use fleet_breaker::CircuitState;
use fleet_breaker::store::FeedOptions;

use crate::common::{
    MAX_STALENESS, agent, fast, generations_until, next, publish, resync_count, rig, transition,
    wait_connected,
};
use crate::support::{TestRedis, wait_until};

async fn kill_pubsub_clients(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(conn)
        .await
        .expect("CLIENT KILL TYPE pubsub")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_subscriptions_reconnect_and_replay_every_missed_transition_once_in_order() {
    let redis = TestRedis::start().await;
    // A first retry 150 to 300 ms after the kill: time to publish into the gap.
    let options = FeedOptions {
        reconnect_min: Duration::from_millis(300),
        ..fast()
    };
    let rig = rig(&redis, "watch-kill", options).await;
    let mut rx = rig.watcher.subscribe();
    let mut conn = redis.connection().await;
    let a = agent("agent-1");

    assert_eq!(publish(&mut conn, &rig.keys, &transition(&a, 1)).await, 1);
    let mut seen = generations_until(&mut rx, &a, 1).await;

    let mut generation = 1;
    for outage in 1..=3u64 {
        assert_eq!(kill_pubsub_clients(&mut conn).await, 1);
        for _ in 0..3 {
            generation += 1;
            let receivers = publish(&mut conn, &rig.keys, &transition(&a, generation)).await;
            assert_eq!(
                receivers, 0,
                "published while nobody is subscribed: only the stream has it"
            );
        }
        wait_until(
            "the cache stops trusting the killed subscription",
            Duration::from_millis(150),
            || async { !rig.cache.is_subscribed() && !rig.watcher.is_connected() },
        )
        .await;
        wait_connected(&rig, outage).await;
        // And a live one after the reconnection.
        generation += 1;
        assert_eq!(
            publish(&mut conn, &rig.keys, &transition(&a, generation)).await,
            1
        );
        seen.extend(generations_until(&mut rx, &a, generation).await);
    }

    assert_eq!(
        seen,
        (1..=generation).collect::<Vec<_>>(),
        "every generation once, in order"
    );
    assert!(rx.try_recv().is_err(), "no duplicates after the last one");
    assert_eq!(rig.watcher.reconnects(), 3);
    assert_eq!(rig.cache.generation(&a), Some(generation));
    assert_eq!(rig.cache.state(&a), Some(transition(&a, generation).to));
    assert_eq!(resync_count(&rig), 4, "one resync per connection");
    assert_eq!(
        rig.resyncs.lock().unwrap()[3],
        [a],
        "the resync gets the cached agents"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_clears_the_cache_and_new_transitions_flow() {
    let mut redis = TestRedis::start().await;
    if !redis.is_owned() {
        eprintln!("skipped: REDIS_URL points at a server this test may not restart");
        return;
    }
    let rig = rig(&redis, "watch-restart", fast()).await;
    let mut rx = rig.watcher.subscribe();
    let a = agent("agent-1");
    {
        let mut conn = redis.connection().await;
        for generation in 1..=3 {
            publish(&mut conn, &rig.keys, &transition(&a, generation)).await;
        }
    }
    assert_eq!(generations_until(&mut rx, &a, 3).await, [1, 2, 3]);
    assert_eq!(rig.cache.generation(&a), Some(3));

    redis.kill();
    wait_until(
        "the watcher notices the dead server",
        Duration::from_secs(1),
        || async { !rig.watcher.is_connected() && !rig.cache.is_subscribed() },
    )
    .await;
    redis.restart().await;
    wait_connected(&rig, 1).await;

    assert_eq!(
        rig.cache.state(&a),
        None,
        "the cache must not stay ahead of the empty Redis"
    );
    assert!(rig.cache.agents().is_empty());
    // Generations start again from 1, and subscribers get them.
    let mut conn = redis.connection().await;
    let fresh = transition(&a, 1);
    assert_eq!(publish(&mut conn, &rig.keys, &fresh).await, 1);
    assert_eq!(next(&mut rx).await, fresh);
    assert_eq!(rig.cache.generation(&a), Some(1));
    assert_eq!(rig.cache.state(&a), Some(CircuitState::Open));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_is_noticed_by_the_ping_within_max_staleness() {
    let redis = TestRedis::start().await;
    if !redis.is_owned() {
        eprintln!("skipped: CLIENT PAUSE would stall everyone sharing REDIS_URL");
        return;
    }
    let rig = rig(&redis, "watch-silent", fast()).await;
    let mut conn = redis.connection().await;

    // The connection stays open, but nothing answers for 2 s.
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2000)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .expect("CLIENT PAUSE");
    let paused = Instant::now();

    wait_until(
        "the cache stops trusting the silent subscription",
        MAX_STALENESS,
        || async { !rig.cache.is_subscribed() },
    )
    .await;
    assert!(!rig.watcher.is_connected());
    assert!(
        paused.elapsed() < Duration::from_millis(1500),
        "still paused: noticed, not reconnected"
    );

    // When Redis answers again, the watcher comes back.
    wait_connected(&rig, 1).await;
    assert!(rig.cache.is_subscribed());
}
