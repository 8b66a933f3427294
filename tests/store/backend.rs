//! A store backend written outside the crate, against the public seam
//! alone: a map of snapshots applying the model's functions. A breaker on
//! it behaves as on the built-in stores, which is what "a new backend is
//! its own folder, one registration line and its tests" rests on.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use fleet_breaker::model::{self, Decision, Snapshot};
use fleet_breaker::router::FailoverRouter;
use fleet_breaker::store::{Applied, BreakerStore, Feed, FeedHandle, Op, StoreError};
use fleet_breaker::{
    AgentId, BreakerConfig, CircuitBreaker, CircuitState, Clock, SystemClock, Transition,
};
use futures::StreamExt;
use tokio::sync::broadcast;

/// The smallest backend: one lock around a map.
#[derive(Debug)]
struct MapStore {
    agents: Mutex<HashMap<AgentId, Snapshot>>,
    transitions: broadcast::Sender<Transition>,
}

impl MapStore {
    fn new() -> Self {
        Self {
            agents: Mutex::new(HashMap::new()),
            transitions: broadcast::channel(64).0,
        }
    }
}

#[async_trait]
impl BreakerStore for MapStore {
    async fn apply(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        op: Op<'_>,
    ) -> Result<Option<Applied<Option<Decision>>>, StoreError> {
        let now = SystemClock.now_ms();
        let mut agents = self.agents.lock().unwrap();
        if op.creates() {
            agents
                .entry(agent.clone())
                .or_insert_with(|| Snapshot::fresh(config));
        }
        let Some(s) = agents.get_mut(agent) else {
            return Ok(None);
        };
        let (value, transition) = match op {
            Op::Acquire { permit_id } => {
                let step = model::acquire(s, config, agent, now, permit_id);
                (Some(step.decision), step.transition)
            }
            Op::Record { ticket, report } => {
                (None, model::record(s, config, agent, now, ticket, &report))
            }
            Op::Flush(batch) => (None, model::flush(s, config, agent, now, batch)),
            Op::Reset => (None, Some(model::reset(s, config, agent, now))),
            Op::Force { mode, ttl } => {
                let ttl_ms = ttl.map(|t| u64::try_from(t.as_millis()).unwrap());
                (
                    None,
                    Some(model::force(s, config, agent, now, mode, ttl_ms)),
                )
            }
            Op::Snapshot => (None, model::refresh(s, config, agent, now)),
            _ => {
                return Err(StoreError::InvalidSettings(
                    "an operation this store does not know".into(),
                ));
            }
        };
        if let Some(t) = &transition {
            let _ = self.transitions.send(t.clone());
        }
        Ok(Some(Applied {
            value,
            snapshot: s.clone(),
            transition,
            now_ms: now,
        }))
    }

    async fn agents(&self) -> Result<Vec<AgentId>, StoreError> {
        let mut agents: Vec<AgentId> = self.agents.lock().unwrap().keys().cloned().collect();
        agents.sort();
        Ok(agents)
    }

    fn feed(&self) -> Feed {
        let sender = self.transitions.clone();
        Feed::in_process(move |_| FeedHandle::in_process(sender))
    }

    fn kind(&self) -> &'static str {
        "map"
    }
}

#[tokio::test]
async fn a_breaker_on_a_backend_written_against_the_seam_opens_and_reports() {
    let breaker = CircuitBreaker::builder()
        .store(MapStore::new())
        .build()
        .expect("valid breaker");
    let agent = AgentId::new("agent-1").unwrap();
    let mut heard = Box::pin(breaker.subscribe());
    for _ in 0..BreakerConfig::default().failure_threshold {
        let permit = breaker.acquire(&agent).await.expect("closed admits");
        permit.failure("down").await;
    }
    let rejected = breaker.acquire(&agent).await.expect_err("open rejects");
    assert_eq!(rejected.state, CircuitState::Open);
    let opened = heard.next().await.expect("the feed delivers the opening");
    assert_eq!(
        (opened.from, opened.to),
        (CircuitState::Closed, CircuitState::Open)
    );
    assert_eq!(breaker.snapshot(&agent).await.unwrap().failure_count, 5);
    assert!(
        !breaker.is_watching(),
        "a store of this process needs no cache"
    );

    // The seam's optional methods: no census (a router reads every agent
    // instead), reads of many agents through `apply`, nothing to sweep.
    let router = FailoverRouter::new(breaker.clone());
    assert_eq!(router.census().await.expect("no error"), None);
    let health = router.health_status().await.expect("health");
    assert_eq!((health.total_agents, health.open_circuits), (1, 1));
    let unknown = AgentId::new("never-called").unwrap();
    let read = breaker
        .read_many(&[agent.clone(), unknown])
        .await
        .expect("read_many");
    assert_eq!(
        read[0].as_ref().unwrap().as_ref().unwrap().state,
        CircuitState::Open
    );
    assert!(read[1].as_ref().unwrap().is_none());
}
