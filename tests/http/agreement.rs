//! Pods started with different process-wide configs do not disagree
//! silently: each publishes its config's fingerprint, compares, and health
//! and `/metrics` say so. Here on a store that shares the fingerprints
//! alone (an embedded store each); `tests/store/fleet_config.rs` does it
//! on Redis.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use fleet_breaker::breaker::config_fingerprint;
use fleet_breaker::http::{self, AppState};
use fleet_breaker::model::Decision;
use fleet_breaker::router::FailoverRouter;
use fleet_breaker::store::{Applied, BreakerStore, Feed, FleetConfig, Op, StoreError};
use fleet_breaker::{AgentId, BreakerConfig, CircuitBreaker, MemoryStore};

use crate::support::alone::run_alone;
use crate::{get, send};

/// An embedded store whose pods' fingerprints are shared, as Redis's are.
#[derive(Debug)]
struct SharedConfigs {
    store: MemoryStore,
    fleet: Arc<Mutex<BTreeMap<String, String>>>,
}

#[async_trait]
impl BreakerStore for SharedConfigs {
    async fn apply(
        &self,
        config: &BreakerConfig,
        agent: &AgentId,
        op: Op<'_>,
    ) -> Result<Option<Applied<Option<Decision>>>, StoreError> {
        self.store.apply(config, agent, op).await
    }

    async fn agents(&self) -> Result<Vec<AgentId>, StoreError> {
        self.store.agents().await
    }

    fn feed(&self) -> Feed {
        self.store.feed()
    }

    fn kind(&self) -> &'static str {
        "shared-configs"
    }

    async fn fleet_configs(
        &self,
        instance: &str,
        fingerprint: &str,
    ) -> Result<Option<Vec<FleetConfig>>, StoreError> {
        let mut fleet = self.fleet.lock().unwrap();
        fleet.insert(instance.to_owned(), fingerprint.to_owned());
        Ok(Some(
            fleet
                .iter()
                .map(|(instance, fingerprint)| FleetConfig {
                    instance: instance.clone(),
                    fingerprint: fingerprint.clone(),
                    written_ms: 0,
                })
                .collect(),
        ))
    }
}

fn pod(
    fleet: &Arc<Mutex<BTreeMap<String, String>>>,
    name: &str,
    config: BreakerConfig,
) -> CircuitBreaker {
    CircuitBreaker::builder()
        .store(SharedConfigs {
            store: MemoryStore::new(),
            fleet: Arc::clone(fleet),
        })
        .config(config)
        .instance_id(name)
        .build()
        .unwrap()
}

async fn metrics_text(breaker: &CircuitBreaker) -> String {
    let app = http::router(AppState::new(FailoverRouter::new(breaker.clone())));
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let (status, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    body.as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_pod_with_another_config_is_named_in_health_and_metrics_until_it_agrees() {
    let fleet = Arc::new(Mutex::new(BTreeMap::new()));
    let a = pod(&fleet, "pod-a", BreakerConfig::default());
    let b = pod(&fleet, "pod-b", BreakerConfig::default());
    let rated = BreakerConfig::builder()
        .failure_rate_threshold(Some(0.5))
        .build()
        .unwrap();
    let c = pod(&fleet, "pod-c", rated);

    // Before any check: nothing compared, nothing claimed.
    assert!(!a.config_agreement().compared);
    assert!(!a.config_agreement().is_mismatch());

    a.check_config_agreement().await.unwrap();
    let agreement = b.check_config_agreement().await.unwrap();
    assert!(agreement.compared);
    assert!(!agreement.is_mismatch(), "{agreement:?}");
    assert!(
        metrics_text(&b)
            .await
            .contains("fleet_breaker_config_mismatch 0")
    );

    c.check_config_agreement().await.unwrap();
    let agreement = a.check_config_agreement().await.unwrap();
    assert_eq!(agreement.instance, "pod-a");
    assert_eq!(
        agreement.fingerprint,
        config_fingerprint(&BreakerConfig::default())
    );
    assert_eq!(
        agreement.differing,
        BTreeMap::from([("pod-c".to_owned(), config_fingerprint(&rated))]),
        "pod-b agrees; pod-c is named with its fingerprint"
    );
    assert_eq!(a.config_agreement(), agreement, "kept for health");
    let seen_by_c = c.check_config_agreement().await.unwrap();
    assert_eq!(seen_by_c.differing.len(), 2, "{seen_by_c:?}");

    assert!(
        metrics_text(&a)
            .await
            .contains("fleet_breaker_config_mismatch 1")
    );
    let app = http::router(AppState::new(FailoverRouter::new(a.clone())));
    let (_, summary) = send(&app, get("/api/circuit-breaker/health/summary")).await;
    assert_eq!(summary["config_mismatch"]["instance"], "pod-a");
    assert_eq!(
        summary["config_mismatch"]["differing"]["pod-c"],
        config_fingerprint(&rated).as_str()
    );
    let (status, health) = send(&app, get("/api/circuit-breaker/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        health["config_mismatch"]["differing"]["pod-c"],
        summary["config_mismatch"]["differing"]["pod-c"]
    );
    assert!(health["agents"].is_object(), "the rest as before: {health}");

    // pod-c restarts with the fleet's config, under the same id.
    let c = pod(&fleet, "pod-c", BreakerConfig::default());
    c.check_config_agreement().await.unwrap();
    let agreement = a.check_config_agreement().await.unwrap();
    assert!(!agreement.is_mismatch(), "{agreement:?}");
    let app = http::router(AppState::new(FailoverRouter::new(a.clone())));
    let (_, summary) = send(&app, get("/api/circuit-breaker/health/summary")).await;
    assert!(summary.get("config_mismatch").is_none(), "{summary}");
    assert!(
        metrics_text(&a)
            .await
            .contains("fleet_breaker_config_mismatch 0")
    );
}

#[tokio::test]
async fn the_embedded_store_has_nothing_to_compare() {
    let breaker = CircuitBreaker::in_memory();
    let agreement = breaker.check_config_agreement().await.unwrap();
    assert!(!agreement.compared);
    assert!(!agreement.is_mismatch());
    assert_eq!(agreement.fingerprint.len(), 40);
    assert_ne!(
        config_fingerprint(&BreakerConfig::default()),
        config_fingerprint(&BreakerConfig::builder().minimum_calls(21).build().unwrap()),
        "any field changes it"
    );
}

/// The log lines written while the guard returned is held (this thread).
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

/// Checked in a child process, alone: the log is captured by a subscriber
/// set for this thread, and `tracing` caches per call site whether anyone
/// listens. Another test of this binary reaching the same `warn!` with no
/// subscriber, as this one set its own, could leave that cache saying no
/// one does: one CI run in a few captured nothing at all.
#[tokio::test]
async fn a_mismatch_is_warned_once_per_change_naming_both_pods() {
    run_alone("agreement::mismatch_warnings_child", |_| {}).await;
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "run by a_mismatch_is_warned_once_per_change_naming_both_pods, in a child process"]
async fn mismatch_warnings_child() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fleet = Arc::new(Mutex::new(BTreeMap::new()));
    let a = pod(&fleet, "pod-a", BreakerConfig::default());
    let jittered = BreakerConfig::builder()
        .backoff_jitter(0.2)
        .build()
        .unwrap();
    let b = pod(&fleet, "pod-b", jittered);
    b.check_config_agreement().await.unwrap();
    for _ in 0..3 {
        a.check_config_agreement().await.unwrap();
    }
    let log = lines.take();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("different process-wide"))
        .collect();
    assert_eq!(warnings.len(), 1, "once, not at every check: {log}");
    assert!(warnings[0].contains("pod-a"), "{log}");
    assert!(warnings[0].contains("pod-b"), "{log}");
    assert!(
        warnings[0].contains(&config_fingerprint(&jittered)),
        "{log}"
    );

    // A third pod that differs too is a change: warned again.
    let c = pod(
        &fleet,
        "pod-c",
        BreakerConfig::builder().minimum_calls(5).build().unwrap(),
    );
    c.check_config_agreement().await.unwrap();
    lines.take();
    a.check_config_agreement().await.unwrap();
    assert_eq!(lines.take().matches("WARN").count(), 1);

    // All agree again: one INFO, then silence.
    drop((b, c));
    fleet.lock().unwrap().retain(|pod, _| pod == "pod-a");
    a.check_config_agreement().await.unwrap();
    a.check_config_agreement().await.unwrap();
    let log = lines.take();
    assert_eq!(
        log.matches("same process-wide breaker config again")
            .count(),
        1,
        "{log}"
    );
    assert!(!log.contains("WARN"), "{log}");
}
