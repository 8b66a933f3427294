//! One corrupt agent in Redis (a field edited by hand): the scripts that
//! read it refuse it, naming the field; reset and force repair it; the
//! other agents, and the pod, go on as usual.

use std::collections::HashMap;
use std::time::Duration;

use fleet_breaker::{
    AgentId, BreakerConfig, CircuitBreaker, CircuitState, ForceMode, RedisStore, RejectCause,
    StorePolicy,
};
use fleet_breaker::{BreakerError, StoreError};
use redis::AsyncCommands;

use crate::support::corrupt::{CORRUPTIONS, corrupt};
use crate::support::{TestRedis, unique_prefix, wait_until};
use fleet_breaker::store::{BreakerStore, StoreExt};

/// The fields of a whole state hash: the eleven of the model and the epoch.
const HASH_FIELDS: usize = 12;

/// What a repair does: reset, or force to a mode.
#[derive(Debug, Clone, Copy)]
enum Repair {
    Reset,
    Force(ForceMode),
}

pub(crate) fn agent(name: &str) -> AgentId {
    AgentId::new(name).unwrap()
}

/// A store on its own prefix and a breaker without a local cache on it;
/// `good` and `bad` have each had one failure and one success.
pub(crate) async fn fleet(redis: &TestRedis, test: &str) -> (RedisStore, CircuitBreaker, String) {
    let prefix = unique_prefix(test);
    let store = RedisStore::builder(redis.url())
        .prefix(&prefix)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let breaker = CircuitBreaker::builder()
        .store(store.clone())
        .local_cache(false)
        .build()
        .unwrap();
    for name in ["good", "bad"] {
        let agent = agent(name);
        breaker.acquire(&agent).await.unwrap().failure("x").await;
        breaker.acquire(&agent).await.unwrap().success().await;
    }
    (store, breaker, prefix)
}

async fn hash(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    agent: &str,
) -> HashMap<String, String> {
    conn.hgetall(format!("{prefix}:{{{agent}}}:state"))
        .await
        .unwrap()
}

/// `read` failed with [`StoreError::Corrupt`] naming `field` and `value`.
fn assert_corrupt<T: std::fmt::Debug>(
    read: Result<T, BreakerError>,
    (field, value): (&str, Option<&str>),
    case: &str,
) {
    let error = read.expect_err(case);
    let BreakerError::Store(error) = error else {
        panic!("{case}: {error:?}");
    };
    assert!(error.is_corrupt(), "{case}: {error:?}");
    assert!(!error.is_store_unavailable(), "{case}");
    let corruption = error.corruption().unwrap();
    assert_eq!(corruption.field, field, "{case}");
    assert_eq!(corruption.value.as_deref(), value, "{case}");
    assert!(error.to_string().contains(field), "{case}: {error}");
    assert!(
        error.to_string().contains("reset"),
        "{case}: says how to repair: {error}"
    );
}

#[tokio::test]
async fn each_corruption_is_refused_by_every_script_that_reads_it() {
    let redis = TestRedis::start().await;
    let mut conn = redis.connection().await;
    for corruption in CORRUPTIONS {
        let case = format!("{corruption:?}");
        let (store, breaker, prefix) = fleet(&redis, "corrupt-typed").await;
        let bad = agent("bad");
        corrupt(&mut conn, &prefix, "bad", corruption).await;
        let before = hash(&mut conn, &prefix, "bad").await;
        let config = breaker.config();
        let ticket = fleet_breaker::model::Ticket {
            permit_id: String::new(),
            generation: 1,
        };
        let batch = fleet_breaker::model::Batch {
            generation: 1,
            successes: 1,
            last_success_ms: None,
            rejections: 1,
        };
        let map = |e: StoreError| BreakerError::Store(e);
        assert_corrupt(
            store.snapshot(config, &bad).await.map_err(map),
            corruption,
            &case,
        );
        assert_corrupt(
            store.acquire(config, &bad, "p-1").await.map_err(map),
            corruption,
            &case,
        );
        let outcome = fleet_breaker::Outcome::Failure;
        let record = store.record(config, &bad, &ticket, outcome).await;
        assert_corrupt(record.map_err(map), corruption, &case);
        assert_corrupt(
            store.flush(config, &bad, &batch).await.map_err(map),
            corruption,
            &case,
        );
        assert_corrupt(breaker.metrics(&bad).await, corruption, &case);
        assert_eq!(
            hash(&mut conn, &prefix, "bad").await,
            before,
            "{case}: nothing written"
        );
    }
}

#[tokio::test]
async fn reset_and_force_repair_each_corruption_and_rewrite_every_field() {
    let redis = TestRedis::start().await;
    let mut conn = redis.connection().await;
    let repairs = [
        Repair::Reset,
        Repair::Force(ForceMode::Open),
        Repair::Force(ForceMode::Closed),
        Repair::Force(ForceMode::Auto),
    ];
    for corruption in CORRUPTIONS {
        for repair in repairs {
            let case = format!("{corruption:?} repaired by {repair:?}");
            let (store, breaker, prefix) = fleet(&redis, "corrupt-repair").await;
            let bad = agent("bad");
            let before = hash(&mut conn, &prefix, "bad").await;
            let generation: u64 = before["generation"].parse().unwrap();
            corrupt(&mut conn, &prefix, "bad", corruption).await;
            assert_corrupt(breaker.snapshot(&bad).await, corruption, &case);

            let transition = match repair {
                Repair::Reset => breaker.reset(&bad).await,
                Repair::Force(mode) => breaker.force(&bad, mode, None).await,
            }
            .unwrap_or_else(|e| panic!("{case}: the repair fails: {e}"));

            let expected_state = match repair {
                Repair::Reset | Repair::Force(ForceMode::Auto) => CircuitState::Closed,
                Repair::Force(ForceMode::Open) => CircuitState::ForcedOpen,
                Repair::Force(ForceMode::Closed) => CircuitState::ForcedClosed,
            };
            assert_eq!(transition.to, expected_state, "{case}");
            if corruption.0 == "state" {
                // An unreadable state counts as closed.
                assert_eq!(transition.from, CircuitState::Closed, "{case}");
            }
            // Every field rewritten, all readable again.
            let after = hash(&mut conn, &prefix, "bad").await;
            assert_eq!(after.len(), HASH_FIELDS, "{case}: every field: {after:?}");
            let snapshot = breaker
                .snapshot(&bad)
                .await
                .unwrap_or_else(|e| panic!("{case}: still unreadable: {e}"));
            assert_eq!(snapshot.state, expected_state, "{case}");
            assert_eq!(snapshot.generation, transition.generation, "{case}");
            if corruption.0 == "generation" {
                // Unreadable: above any generation a pod may have cached.
                assert!(
                    transition.generation > 1_000_000_000_000,
                    "{case}: {}",
                    transition.generation
                );
            } else {
                assert_eq!(transition.generation, generation + 1, "{case}");
            }
            if corruption.0 == "backoff_ms" {
                assert_eq!(snapshot.backoff_ms, 1_000, "{case}: the base backoff");
            }
            // The pod decides with the store again.
            match breaker.acquire(&bad).await {
                Ok(permit) => {
                    assert!(!permit.is_degraded(), "{case}");
                    permit.success().await;
                }
                Err(rejected) => {
                    assert_eq!(rejected.state, CircuitState::ForcedOpen, "{case}");
                    assert_eq!(rejected.cause, RejectCause::Circuit, "{case}");
                }
            }
            // The other agent was never touched.
            assert_eq!(
                breaker
                    .metrics(&agent("good"))
                    .await
                    .unwrap()
                    .metrics
                    .success_count,
                1,
                "{case}"
            );
            drop(store);
        }
    }
}

#[tokio::test]
async fn a_key_of_the_wrong_type_is_repaired_by_reset() {
    let redis = TestRedis::start().await;
    let mut conn = redis.connection().await;
    let (_store, breaker, prefix) = fleet(&redis, "corrupt-type").await;
    let key = format!("{prefix}:{{bad}}:state");
    conn.del::<_, ()>(&key).await.unwrap();
    conn.set::<_, _, ()>(&key, "not a hash").await.unwrap();
    let bad = agent("bad");
    assert!(breaker.snapshot(&bad).await.is_err());
    let transition = breaker.reset(&bad).await.expect("reset repairs");
    assert_eq!(transition.to, CircuitState::Closed);
    assert_eq!(hash(&mut conn, &prefix, "bad").await.len(), HASH_FIELDS);
    assert_eq!(
        breaker.snapshot(&bad).await.unwrap().state,
        CircuitState::Closed
    );
}

#[tokio::test]
async fn a_corrupt_agent_follows_the_store_policy_and_spares_the_pod() {
    let redis = TestRedis::start().await;
    let mut conn = redis.connection().await;
    for policy in [
        StorePolicy::FailLocal,
        StorePolicy::FailOpen,
        StorePolicy::FailClosed,
    ] {
        let (store, _setup, prefix) = fleet(&redis, "corrupt-policy").await;
        corrupt(&mut conn, &prefix, "bad", CORRUPTIONS[1]).await;
        // A pod that never saw the agent before it was corrupted: with a
        // local cache (as in production) and degraded mode after one error.
        let pod = CircuitBreaker::builder()
            .store(store.clone())
            .policy(policy)
            .degrade_after(1)
            .build()
            .unwrap();
        let (good, bad) = (agent("good"), agent("bad"));
        for n in 0..10 {
            let answer = pod.acquire(&bad).await;
            match policy {
                StorePolicy::FailClosed => {
                    assert!(answer.is_err(), "{policy:?} call {n}: rejected")
                }
                _ => {
                    let permit = answer.unwrap_or_else(|r| panic!("{policy:?} call {n}: {r}"));
                    assert!(
                        permit.is_degraded(),
                        "{policy:?}: decided without the store"
                    );
                    permit.success().await;
                }
            }
            // The good agent is decided with the store all along.
            let permit = pod.acquire(&good).await.unwrap();
            assert!(!permit.is_degraded(), "{policy:?} call {n}: good agent");
            permit.success().await;
        }
        assert!(
            !pod.is_degraded(),
            "{policy:?}: one corrupt agent never degrades the pod"
        );
        assert_eq!(pod.store_stats().errors, 0, "{policy:?}");

        // A permit granted before the corruption: its outcome follows the
        // policy too, and the pod stays out of degraded mode.
        let other = agent("other");
        let permit = pod.acquire(&other).await.unwrap();
        assert!(!permit.is_degraded());
        corrupt(&mut conn, &prefix, "other", CORRUPTIONS[0]).await;
        permit.failure("x").await;
        assert!(!pod.is_degraded(), "{policy:?}");

        // After a repair the agent is decided with the store again.
        pod.reset(&bad).await.unwrap();
        let permit = pod.acquire(&bad).await.unwrap();
        assert!(!permit.is_degraded(), "{policy:?}: repaired");
        permit.success().await;
    }
}

/// A pod that cached the agent before it was corrupted takes the repair:
/// caches move forward only, so a repair of an unreadable generation must
/// not restart the count at 1.
#[tokio::test]
async fn a_pod_that_cached_the_agent_takes_the_repair_of_its_generation() {
    let redis = TestRedis::start().await;
    let mut conn = redis.connection().await;
    let (store, admin, prefix) = fleet(&redis, "corrupt-cached").await;
    let bad = agent("bad");
    // Generation 2: forced open, then back to closed.
    admin.force(&bad, ForceMode::Open, None).await.unwrap();
    admin.force(&bad, ForceMode::Auto, None).await.unwrap();
    let pod = CircuitBreaker::builder()
        .store(store.clone())
        .build()
        .unwrap();
    wait_until(
        "the pod's watcher subscribes",
        Duration::from_secs(5),
        || {
            let pod = pod.clone();
            async move { pod.is_watching() }
        },
    )
    .await;
    pod.acquire(&bad).await.unwrap().success().await;
    let cache = pod.cache().unwrap();
    assert_eq!(cache.generation(&bad), Some(2));

    corrupt(&mut conn, &prefix, "bad", CORRUPTIONS[3]).await;
    let repaired = admin.reset(&bad).await.unwrap();
    assert!(repaired.generation > 2, "{}", repaired.generation);
    wait_until(
        "the pod's cache takes the repair",
        Duration::from_secs(5),
        || {
            let cache = std::sync::Arc::clone(cache);
            let bad = bad.clone();
            async move { cache.generation(&bad) == Some(repaired.generation) }
        },
    )
    .await;
    let permit = pod.acquire(&bad).await.unwrap();
    assert_eq!(permit.generation(), repaired.generation);
    permit.success().await;
}

/// A read of many agents (no script) names each corruption as the snapshot
/// script does: every corruption of the hash, a key of the wrong type, a
/// probes key of the wrong type and a lease deadline that is no number; the
/// good agent beside them reads as usual.
#[tokio::test]
async fn a_read_of_many_agents_names_each_corruption_as_the_scripts_do() {
    let redis = TestRedis::start().await;
    let mut conn = redis.connection().await;
    let (store, breaker, prefix) = fleet(&redis, "corrupt-many").await;
    let config = BreakerConfig::default();
    let mut agents: Vec<AgentId> = (0..CORRUPTIONS.len())
        .map(|i| agent(&format!("hash-{i}")))
        .collect();
    agents.extend(["wrong-type", "probes-type", "probes-score"].map(agent));
    for agent in &agents {
        breaker.acquire(agent).await.unwrap().success().await;
    }
    agents.push(agent("good"));
    for (i, corruption) in CORRUPTIONS.iter().enumerate() {
        corrupt(&mut conn, &prefix, &format!("hash-{i}"), *corruption).await;
    }
    conn.del::<_, ()>(format!("{prefix}:{{wrong-type}}:state"))
        .await
        .unwrap();
    let wrong = format!("{prefix}:{{wrong-type}}:state");
    conn.set::<_, _, ()>(&wrong, "not a hash").await.unwrap();
    // Half-open agents whose probes key is not a sorted set, or holds a
    // deadline that is no number (ZADD refuses "nan": "+inf").
    for (name, probes) in [("probes-type", None), ("probes-score", Some("+inf"))] {
        let state = format!("{prefix}:{{{name}}}:state");
        conn.hset::<_, _, _, ()>(&state, "state", "half_open")
            .await
            .unwrap();
        let key = format!("{prefix}:{{{name}}}:probes");
        match probes {
            None => conn.set::<_, _, ()>(&key, "x").await.unwrap(),
            Some(score) => {
                let _: () = redis::cmd("ZADD")
                    .arg(&key)
                    .arg(score)
                    .arg("lease-1")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
    let read = store.read_many(&config, &agents).await.expect("read_many");
    // The read marked each corrupt agent so in the census.
    let census = store.census(&[]).await.unwrap().unwrap();
    let mut corrupt = agents[..agents.len() - 1].to_vec();
    corrupt.sort();
    assert_eq!(census.corrupt.into_iter().collect::<Vec<_>>(), corrupt);

    for (agent, read) in agents.iter().zip(read) {
        let scripted = store.snapshot(&config, agent).await;
        match (read, scripted) {
            (Err(read), Err(scripted)) => {
                assert_eq!(read.to_string(), scripted.to_string(), "{agent}");
                assert!(read.is_corrupt(), "{agent}: {read}");
            }
            (Ok(Some(read)), Ok(Some(scripted))) => {
                assert_eq!(agent.as_str(), "good");
                assert_eq!(read, scripted.snapshot);
            }
            (read, scripted) => panic!("{agent}: read {read:?}, script {scripted:?}"),
        }
    }
    drop(breaker);
}
