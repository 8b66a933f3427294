//! The embedded store never fails, so never degrades; the settings are
//! checked; the JSON shapes.

use fleet_breaker::router::FailoverRouter;
use fleet_breaker::{CircuitBreaker, HealthStatus, StoreStats, StoreStatus};
use std::time::Duration;

use crate::common::id;

#[tokio::test]
async fn the_embedded_store_never_degrades() {
    let breaker = CircuitBreaker::builder().degrade_after(1).build().unwrap();
    let agent = id("agent-1");
    for n in 0..1_000 {
        match breaker.acquire(&agent).await {
            Ok(permit) if n % 3 == 0 => permit.failure("down").await,
            Ok(permit) => permit.success().await,
            Err(_) => {}
        }
    }
    assert!(!breaker.is_degraded());
    assert_eq!(breaker.store_status(), StoreStatus::Ok);
    assert_eq!(breaker.store_stats(), StoreStats::default());
    assert_eq!(breaker.store().ping().await, Ok(()));

    let router = FailoverRouter::new(breaker);
    let json = serde_json::to_value(router.health_status().await.unwrap()).unwrap();
    assert_eq!(json["store"], "ok", "{json}");
    assert!(json.get("store_degraded_since_ms").is_none(), "{json}");
    assert!(json.get("store_degraded_reason").is_none(), "{json}");
}

#[test]
fn degraded_mode_settings_are_checked_at_build_time() {
    let error = CircuitBreaker::builder()
        .degrade_after(0)
        .build()
        .expect_err("zero errors");
    assert_eq!(error.field, "degrade_after");
    assert!(error.to_string().contains("at least 1"), "{error}");
    let error = CircuitBreaker::builder()
        .store_probe_interval(Duration::from_millis(5))
        .build()
        .expect_err("too fast");
    assert_eq!(error.field, "store_probe_interval");
    assert!(error.to_string().contains("10 ms"), "{error}");
    CircuitBreaker::builder()
        .degrade_after(1)
        .store_probe_interval(Duration::from_millis(10))
        .build()
        .expect("the smallest valid settings");
}

#[test]
fn the_store_status_serialises_with_its_detail() {
    assert_eq!(
        serde_json::to_value(StoreStatus::Ok).unwrap(),
        serde_json::json!({"status": "ok"})
    );
    let degraded = StoreStatus::Degraded {
        since_ms: 1_700_000_000_000,
        reason: "Redis did not answer within 100ms".into(),
    };
    assert_eq!(
        serde_json::to_value(&degraded).unwrap(),
        serde_json::json!({
            "status": "degraded",
            "since_ms": 1_700_000_000_000_u64,
            "reason": "Redis did not answer within 100ms",
        })
    );
}

#[tokio::test]
async fn health_reads_back_what_it_writes_degraded_or_not() {
    let router = FailoverRouter::new(CircuitBreaker::in_memory());
    let mut health = router.health_status().await.unwrap();
    for store in [
        StoreStatus::Ok,
        StoreStatus::Degraded {
            since_ms: 42,
            reason: "Redis is unavailable: connection refused".into(),
        },
    ] {
        health.store = store;
        let json = serde_json::to_string(&health).unwrap();
        let back: HealthStatus = serde_json::from_str(&json).unwrap();
        assert_eq!(back, health, "{json}");
    }
    let json = serde_json::to_value(&health).unwrap();
    assert_eq!(json["store"], "degraded");
    assert_eq!(json["store_degraded_since_ms"], 42);
}
