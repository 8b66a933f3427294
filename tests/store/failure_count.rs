//! `failure_count` counts consecutive failures in the closed state only, in
//! the Lua scripts as in the model: probe outcomes leave it as the opening
//! left it, so an open circuit shows the threshold however often it reopened.

use std::sync::Arc;
use std::time::Duration;

use fleet_breaker::model::{Decision, Ticket};
use fleet_breaker::store::StoreExt;
use fleet_breaker::{AgentId, BreakerConfig, CircuitState, ManualClock, Outcome, RedisStore};

use crate::support::{TestRedis, unique_prefix};

const START_MS: u64 = 1_700_000_000_000;

async fn grant(store: &RedisStore, config: &BreakerConfig, agent: &AgentId, id: &str) -> Ticket {
    let applied = store.acquire(config, agent, id).await.expect("acquire");
    match applied.value {
        Decision::Granted(grant) => Ticket {
            permit_id: id.to_owned(),
            generation: grant.generation,
        },
        rejected @ Decision::Rejected { .. } => panic!("expected a permit, got {rejected:?}"),
    }
}

#[tokio::test]
async fn repeated_openings_on_redis_keep_failure_count_at_the_threshold() {
    let redis = TestRedis::start().await;
    let clock = ManualClock::new(START_MS);
    let store = RedisStore::builder(redis.url())
        .prefix(unique_prefix("failure-count"))
        .timeout(Duration::from_secs(5))
        .clock_override(Arc::new(clock.clone()))
        .build()
        .await
        .expect("connect to the test Redis");
    let config = BreakerConfig::default();
    let agent = AgentId::new("agent-1").expect("valid id");
    for i in 0..config.failure_threshold {
        let ticket = grant(&store, &config, &agent, &format!("call-{i}")).await;
        store
            .record(&config, &agent, &ticket, Outcome::Failure)
            .await
            .expect("record");
    }

    for round in 0..4 {
        let snapshot = store.snapshot(&config, &agent).await.unwrap().unwrap();
        assert_eq!(snapshot.snapshot.state, CircuitState::Open, "round {round}");
        assert_eq!(snapshot.snapshot.failure_count, 5, "open, round {round}");
        clock.set(snapshot.snapshot.open_until_ms);
        let first = grant(&store, &config, &agent, &format!("probe-{round}-a")).await;
        let second = grant(&store, &config, &agent, &format!("probe-{round}-b")).await;
        let applied = store
            .record(&config, &agent, &first, Outcome::Success)
            .await
            .expect("record a probe success");
        assert_eq!(applied.snapshot.state, CircuitState::HalfOpen);
        assert_eq!(
            applied.snapshot.failure_count, 5,
            "half-open, round {round}"
        );

        let applied = store
            .record(&config, &agent, &second, Outcome::Failure)
            .await
            .expect("record a probe failure");

        assert_eq!(applied.snapshot.state, CircuitState::Open);
        assert_eq!(
            (
                applied.snapshot.failure_count,
                applied.snapshot.success_count
            ),
            (5, 0),
            "reopened, round {round}"
        );
        assert_eq!(applied.snapshot.last_failure_ms, Some(clock_ms(&clock)));
    }
}

fn clock_ms(clock: &ManualClock) -> u64 {
    use fleet_breaker::Clock as _;
    clock.now_ms()
}
