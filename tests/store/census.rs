//! The census (the fleet's counts without reading every agent) agrees with
//! a read of every agent on both stores; a read repairs a wrong census
//! field; idle agents expire on Redis, only when closed, and a sweep takes
//! them out of the agents set.

use std::sync::Arc;
use std::time::Duration;

use fleet_breaker::model::{Decision, Ticket};
use fleet_breaker::store::{BreakerStore, Census, StoreExt};
use fleet_breaker::{
    AgentId, BreakerConfig, CircuitState, ForceMode, ManualClock, MemoryStore, Outcome, RedisStore,
};
use redis::AsyncCommands;

use crate::support::{TestRedis, unique_prefix, wait_for};

fn agent(id: &str) -> AgentId {
    AgentId::new(id).expect("valid id")
}

fn config() -> BreakerConfig {
    BreakerConfig::builder()
        .failure_threshold(2)
        .half_open_max_calls(2)
        .build()
        .expect("valid config")
}

/// Fails `agent` until it opens.
async fn trip(store: &dyn BreakerStore, config: &BreakerConfig, agent: &AgentId) {
    for i in 0..config.failure_threshold {
        let applied = store
            .acquire(config, agent, &format!("p-{i}"))
            .await
            .expect("acquire");
        let Decision::Granted(grant) = applied.value else {
            panic!("{agent}: rejected before the threshold");
        };
        let ticket = Ticket {
            permit_id: format!("p-{i}"),
            generation: grant.generation,
        };
        store
            .record(config, agent, &ticket, Outcome::Failure)
            .await
            .expect("record");
    }
}

/// Every agent's state as a read of each finds it (which also ends a
/// force past its TTL, as the census counts it).
async fn read_all(store: &dyn BreakerStore, config: &BreakerConfig) -> Census {
    let agents = store.agents().await.expect("agents");
    let mut read = Census {
        total: agents.len() as u64,
        ..Census::default()
    };
    for agent in agents {
        let snapshot = store
            .snapshot(config, &agent)
            .await
            .expect("snapshot")
            .expect("a known agent")
            .snapshot;
        if snapshot.state != CircuitState::Closed {
            read.not_closed.insert(agent, snapshot.state);
        }
    }
    read
}

/// Open, half-open, forced open (with a TTL running and one past), forced
/// closed and closed agents: the census agrees with reading each, before
/// the reads (which end the expired force) and after.
async fn the_census_agrees_with_reading_every_agent(
    store: Arc<dyn BreakerStore>,
    clock: &ManualClock,
) {
    let kind = store.kind();
    let config = config();
    let store = store.as_ref();
    trip(store, &config, &agent("a-open")).await;
    trip(store, &config, &agent("b-half-open")).await;
    for id in [
        "c-forced-open",
        "d-forced-closed",
        "e-closed",
        "f-force-ends",
    ] {
        store
            .acquire(&config, &agent(id), "p")
            .await
            .expect("acquire");
    }
    store
        .force(
            &config,
            &agent("c-forced-open"),
            ForceMode::Open,
            Some(Duration::from_secs(600)),
        )
        .await
        .expect("force");
    store
        .force(&config, &agent("d-forced-closed"), ForceMode::Closed, None)
        .await
        .expect("force");
    store
        .force(
            &config,
            &agent("f-force-ends"),
            ForceMode::Open,
            Some(Duration::from_secs(5)),
        )
        .await
        .expect("force");
    clock.advance(Duration::from_secs(10));
    // Past the backoff: the first acquire makes b half-open.
    store
        .acquire(&config, &agent("b-half-open"), "probe")
        .await
        .expect("acquire");
    let named = [agent("e-closed"), agent("g-named-never-called")];

    let census = store
        .census(&named)
        .await
        .expect("census")
        .expect("a census");
    assert_eq!(census.total, 7, "{kind}: six agents and one named only");
    let expected = [
        ("a-open", CircuitState::Open),
        ("b-half-open", CircuitState::HalfOpen),
        ("c-forced-open", CircuitState::ForcedOpen),
        ("d-forced-closed", CircuitState::ForcedClosed),
    ];
    let expected: Vec<(AgentId, CircuitState)> =
        expected.iter().map(|(id, s)| (agent(id), *s)).collect();
    assert_eq!(
        census.not_closed.clone().into_iter().collect::<Vec<_>>(),
        expected,
        "{kind}: the force past its TTL counts as closed"
    );
    assert_eq!((census.open(), census.half_open()), (2, 1), "{kind}");

    let read = read_all(store, &config).await;
    assert_eq!(read.not_closed, census.not_closed, "{kind}: as read");
    let after = store.census(&[]).await.expect("census").expect("a census");
    assert_eq!(after.not_closed, read.not_closed, "{kind}: after the reads");
    assert_eq!(after.total, 6, "{kind}");
}

#[tokio::test]
async fn the_memory_census_agrees_with_reading_every_agent() {
    let clock = ManualClock::new(1_000_000);
    let store = MemoryStore::with_clock(Arc::new(clock.clone()));
    the_census_agrees_with_reading_every_agent(Arc::new(store), &clock).await;
}

/// A Redis, a store on it under a fresh prefix (on a manual clock), and
/// the config with `idle_ttl`.
async fn on_redis(
    name: &str,
    idle_ttl: Option<Duration>,
) -> (TestRedis, String, RedisStore, BreakerConfig) {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix(name);
    let store = redis_store(&redis, &prefix, &ManualClock::new(1_000_000)).await;
    let config = BreakerConfig {
        idle_ttl,
        ..config()
    };
    (redis, prefix, store, config)
}

async fn redis_store(redis: &TestRedis, prefix: &str, clock: &ManualClock) -> RedisStore {
    RedisStore::builder(redis.url())
        .prefix(prefix)
        .clock_override(Arc::new(clock.clone()))
        .build()
        .await
        .expect("store")
}

#[tokio::test]
async fn the_redis_census_agrees_with_reading_every_agent() {
    let redis = TestRedis::start().await;
    let clock = ManualClock::new(1_000_000);
    let store = redis_store(&redis, &unique_prefix("census"), &clock).await;
    the_census_agrees_with_reading_every_agent(Arc::new(store), &clock).await;
}

/// A census field missing (an agent tripped before the census existed) or
/// wrong (edited by hand), or left for an agent whose keys are gone: a read
/// of the agent puts it right, by the snapshot script or by a read of many
/// agents (no script for the read; one to put the field right).
#[tokio::test]
async fn a_snapshot_repairs_the_census() {
    a_read_repairs_the_census(false).await;
}

#[tokio::test]
async fn a_read_of_many_agents_repairs_the_census() {
    a_read_repairs_the_census(true).await;
}

async fn a_read_repairs_the_census(many: bool) {
    let (redis, prefix, store, config) = on_redis("census_repair", None).await;
    let (open, closed, gone) = (agent("open"), agent("closed"), agent("gone"));
    trip(&store, &config, &open).await;
    trip(&store, &config, &gone).await;
    store.acquire(&config, &closed, "p").await.expect("acquire");
    let census_key = format!("{prefix}:not_closed");
    let mut conn = redis.connection().await;
    let _: () = conn.hdel(&census_key, "open").await.unwrap();
    let _: () = conn.hset(&census_key, "closed", "half_open").await.unwrap();
    let _: () = conn.del(format!("{prefix}:{{gone}}:state")).await.unwrap();
    let census = store.census(&[]).await.unwrap().unwrap();
    assert_eq!(
        census.not_closed.keys().collect::<Vec<_>>(),
        [&closed, &gone],
        "the census as edited"
    );

    let agents = [open.clone(), closed.clone(), gone.clone()];
    if many {
        let read = store.read_many(&config, &agents).await.expect("read_many");
        let states: Vec<_> = read
            .into_iter()
            .map(|r| r.expect("not corrupt").map(|s| s.state))
            .collect();
        assert_eq!(
            states,
            [Some(CircuitState::Open), Some(CircuitState::Closed), None]
        );
    } else {
        for agent in &agents {
            store.snapshot(&config, agent).await.expect("snapshot");
        }
    }

    let census = store.census(&[]).await.unwrap().unwrap();
    assert_eq!(
        census.not_closed.into_iter().collect::<Vec<_>>(),
        [(open, CircuitState::Open)],
        "repaired by the reads"
    );
}

/// A write to a closed agent sets its hash to expire after `idle_ttl`; an
/// open one never expires; closing it again sets the expiry back.
#[tokio::test]
async fn only_a_closed_agent_expires() {
    let (redis, prefix, store, config) = on_redis("idle_ttl", Some(Duration::from_secs(100))).await;
    let id = agent("expiring");
    let key = format!("{prefix}:{{expiring}}:state");
    let mut conn = redis.connection().await;
    let ttl = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        let key = key.clone();
        async move { conn.pttl::<_, i64>(&key).await.unwrap() }
    };

    let granted = store.acquire(&config, &id, "p-0").await.expect("acquire");
    assert!(matches!(granted.value, Decision::Granted(_)));
    let first = ttl(&mut conn).await;
    assert!(
        (1..=100_000).contains(&first),
        "closed: expires, pttl {first}"
    );

    trip(&store, &config, &id).await;
    assert_eq!(ttl(&mut conn).await, -1, "open: kept however long");

    store.reset(&config, &id).await.expect("reset");
    let closed = ttl(&mut conn).await;
    assert!(
        (1..=100_000).contains(&closed),
        "closed again, pttl {closed}"
    );

    let keep = BreakerConfig {
        idle_ttl: None,
        ..config
    };
    store.acquire(&keep, &id, "p-9").await.expect("acquire");
    let ticket = Ticket {
        permit_id: "p-9".into(),
        generation: 2,
    };
    store
        .record(&keep, &id, &ticket, Outcome::Success)
        .await
        .expect("record");
    assert_eq!(ttl(&mut conn).await, -1, "idle_ttl none: kept");
}

/// An agent whose hash expired leaves the agents set and the census at the
/// next sweep; the others stay; while another pod holds the sweep's lease,
/// a pod does not sweep.
#[tokio::test]
async fn a_sweep_forgets_expired_agents_once_per_interval() {
    let (redis, prefix, store, config) = on_redis("sweep", Some(Duration::from_secs(1))).await;
    let (idle, open) = (agent("idle"), agent("open"));
    store.acquire(&config, &idle, "p").await.expect("acquire");
    trip(&store, &config, &open).await;
    let mut conn = redis.connection().await;
    wait_for(
        "the idle agent's hash expires",
        Duration::from_secs(5),
        || {
            let mut conn = conn.clone();
            let key = format!("{prefix}:{{idle}}:state");
            async move { (!conn.exists::<_, bool>(&key).await.unwrap()).then_some(()) }
        },
    )
    .await;
    assert_eq!(store.agents().await.unwrap(), [idle.clone(), open.clone()]);

    assert_eq!(store.sweep_idle(&config).await.expect("sweep"), 1);

    assert_eq!(store.agents().await.unwrap(), [open]);
    let census = store.census(&[]).await.unwrap().unwrap();
    assert_eq!((census.total, census.open()), (1, 1));
    // Called again, the agent is back; while another pod holds the lease,
    // this one does not sweep.
    store.acquire(&config, &idle, "p").await.expect("acquire");
    let _: () = conn.del(format!("{prefix}:{{idle}}:state")).await.unwrap();
    let _: () = conn
        .pset_ex(format!("{prefix}:sweep_lease"), "another-pod", 60_000)
        .await
        .unwrap();
    assert_eq!(
        store.sweep_idle(&config).await.expect("sweep"),
        0,
        "lease held"
    );
    let _: () = conn.del(format!("{prefix}:sweep_lease")).await.unwrap();
    assert_eq!(store.sweep_idle(&config).await.expect("sweep"), 1);
}

/// A corrupt state enters the census when a script refuses it, so the
/// counts show it; a repair (reset) takes it out.
#[tokio::test]
async fn a_corrupt_agent_is_counted_once_a_script_refuses_it() {
    let (redis, prefix, store, config) = on_redis("census_corrupt", None).await;
    let bad = agent("bad");
    store.acquire(&config, &bad, "p").await.expect("acquire");
    let mut conn = redis.connection().await;
    let _: () = conn
        .hset(format!("{prefix}:{{bad}}:state"), "failure_count", "banana")
        .await
        .unwrap();
    let refused = store.acquire(&config, &bad, "p").await;
    assert!(refused.is_err_and(|e| e.is_corrupt()));

    let census = store.census(&[]).await.unwrap().unwrap();
    assert_eq!(
        census.corrupt.iter().collect::<Vec<_>>(),
        [&bad],
        "counted corrupt"
    );
    assert!(census.not_closed.is_empty());

    store.reset(&config, &bad).await.expect("reset repairs");
    let census = store.census(&[]).await.unwrap().unwrap();
    assert!(census.corrupt.is_empty(), "{census:?}");
}

/// End to end: a breaker on Redis with `idle_ttl` of a second forgets an
/// agent nobody calls any more (its keys expire, its sweeper takes it out
/// of the agents set) and keeps the open one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_forgets_an_idle_agent_and_keeps_an_open_one() {
    let (redis, prefix, _, config) = on_redis("idle_breaker", Some(Duration::from_secs(1))).await;
    let store = RedisStore::builder(redis.url())
        .prefix(&prefix)
        .build()
        .await
        .expect("store");
    let breaker = fleet_breaker::CircuitBreaker::builder()
        .store(store.clone())
        .config(config)
        .build()
        .expect("breaker");
    let (idle, open) = (agent("idle"), agent("open"));
    breaker
        .acquire(&idle)
        .await
        .expect("closed")
        .success()
        .await;
    breaker.flush().await.expect("flush");
    for _ in 0..config.failure_threshold {
        breaker
            .acquire(&open)
            .await
            .expect("closed")
            .failure("down")
            .await;
    }
    wait_for(
        "the sweeper forgets the idle agent",
        Duration::from_secs(10),
        || {
            let store = store.clone();
            let open = open.clone();
            async move { (store.agents().await.unwrap() == [open]).then_some(()) }
        },
    )
    .await;
    assert_eq!(
        breaker.snapshot(&open).await.unwrap().state,
        CircuitState::Open,
        "an open agent is never forgotten"
    );
}

/// A pod's cache in front of the embedded store counts successes locally;
/// a read of many agents (the health listing, made here by another pod of
/// the same store) folds them in first, as every operation of the store
/// does, so the listing shows them at once, not at the next flush.
#[tokio::test]
async fn a_listing_of_the_embedded_store_shows_the_successes_a_cache_holds() {
    let store = MemoryStore::new();
    let pod = fleet_breaker::CircuitBreaker::builder()
        .store(store.clone())
        .build()
        .expect("breaker");
    let id = agent("counted");
    for _ in 0..3 {
        pod.acquire(&id).await.expect("closed").success().await;
    }
    let reader = fleet_breaker::CircuitBreaker::builder()
        .store(store)
        .build()
        .expect("breaker");
    let router = fleet_breaker::router::FailoverRouter::new(reader);
    let health = router.health_status().await.expect("health");
    assert_eq!(health.agents[&id].metrics.success_count, 3);
}
