//! One corrupt agent in Redis: health, `/metrics` and the admin routes go
//! on for every agent, report the corrupt one naming the field, and repair
//! it; a malformed failure record is skipped and counted.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use fleet_breaker::http::{self, AdminToken, AppState};
use fleet_breaker::router::FailoverRouter;
use fleet_breaker::{CircuitBreaker, RedisStore};
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::support::corrupt::CORRUPTIONS;
use crate::support::{self, TestRedis};
use crate::{TOKEN, admin_post, agent, get, send};

/// A service on Redis (no health copy) over agents `good-1`, `good-2` and
/// `agent-0001`, each called once; returns the app and the key prefix.
async fn app_on_redis(redis: &TestRedis) -> (Router, String) {
    let prefix = support::unique_prefix("http-corrupt");
    let store = RedisStore::builder(redis.url())
        .prefix(&prefix)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let breaker = CircuitBreaker::builder().store(store).build().unwrap();
    for name in ["good-1", "good-2", "agent-0001"] {
        breaker
            .call(&agent(name), async { Ok::<_, std::io::Error>(()) })
            .await
            .unwrap();
    }
    let state = AppState::new(FailoverRouter::new(breaker))
        .with_admin_token(Some(AdminToken::new(TOKEN).unwrap()))
        .with_health_max_age(Duration::ZERO)
        .with_metrics_agents(http::MetricsAgents::All);
    (http::router(state), prefix)
}

/// Writes one corruption into `agent-0001`'s hash.
async fn corrupt(redis: &TestRedis, prefix: &str, corruption: (&str, Option<&str>)) {
    let mut conn = redis.connection().await;
    support::corrupt::corrupt(&mut conn, prefix, "agent-0001", corruption).await;
}

async fn metrics_text(app: &Router) -> String {
    let (status, body) = send(app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    body.as_str().unwrap().to_owned()
}

#[tokio::test]
async fn health_and_metrics_report_each_corrupt_agent_and_serve_the_others() {
    let redis = TestRedis::start().await;
    for corruption in CORRUPTIONS {
        let (field, value) = corruption;
        let (app, prefix) = app_on_redis(&redis).await;
        corrupt(&redis, &prefix, corruption).await;

        let (status, health) = send(&app, get("/api/circuit-breaker/health")).await;
        assert_eq!(status, StatusCode::OK, "{corruption:?}: {health}");
        assert_eq!(health["store"], "ok", "{corruption:?}");
        assert_eq!(health["total_agents"], 3, "{corruption:?}");
        assert_eq!(health["healthy_agents"], 2, "{corruption:?}");
        assert_eq!(health["open_circuits"], 0, "{corruption:?}");
        assert_eq!(health["corrupt_agents"], 1, "{corruption:?}");
        let bad = &health["agents"]["agent-0001"];
        assert_eq!(bad["state"], "corrupt", "{corruption:?}: {bad}");
        assert_eq!(bad["corrupt"]["field"], field, "{corruption:?}: {bad}");
        assert_eq!(
            bad["corrupt"]["value"],
            value.map_or(Value::Null, Value::from),
            "{corruption:?}: {bad}"
        );
        for good in ["good-1", "good-2"] {
            assert_eq!(health["agents"][good]["state"], "closed", "{corruption:?}");
            assert_eq!(
                health["agents"][good]["metrics"]["success_count"], 1,
                "{corruption:?}"
            );
        }

        let text = metrics_text(&app).await;
        assert!(
            text.contains("fleet_breaker_store_up 1"),
            "{corruption:?}: {text}"
        );
        assert!(
            text.contains(&format!(
                "fleet_breaker_agent_corrupt{{agent=\"agent-0001\",field=\"{field}\"}} 1"
            )),
            "{corruption:?}: {text}"
        );
        assert!(text.contains("fleet_breaker_corrupt_agents 1"), "{text}");
        for good in ["good-1", "good-2"] {
            assert!(
                text.contains(&format!(
                    "fleet_breaker_success_count{{agent=\"{good}\"}} 1"
                )),
                "{corruption:?}: {good}'s series: {text}"
            );
        }
    }
}

#[tokio::test]
async fn reset_and_force_over_http_repair_a_corrupt_agent() {
    let redis = TestRedis::start().await;
    for (n, corruption) in CORRUPTIONS.into_iter().enumerate() {
        let (app, prefix) = app_on_redis(&redis).await;
        corrupt(&redis, &prefix, corruption).await;
        // Reset for some, force open then auto for the others.
        let (status, body) = if n % 2 == 0 {
            send(
                &app,
                admin_post("/api/circuit-breaker/reset/agent-0001", Some(TOKEN), None),
            )
            .await
        } else {
            send(
                &app,
                admin_post(
                    "/api/circuit-breaker/force/agent-0001",
                    Some(TOKEN),
                    Some(json!({"state": "open"})),
                ),
            )
            .await
        };
        assert_eq!(status, StatusCode::OK, "{corruption:?}: {body}");
        let (_, health) = send(&app, get("/api/circuit-breaker/health")).await;
        let expected = if n % 2 == 0 { "closed" } else { "forced_open" };
        assert_eq!(
            health["agents"]["agent-0001"]["state"], expected,
            "{corruption:?}: {health}"
        );
        assert_eq!(health["corrupt_agents"], 0, "{corruption:?}");
        assert!(
            !metrics_text(&app)
                .await
                .contains("fleet_breaker_agent_corrupt{"),
            "{corruption:?}: repaired"
        );
    }
}

#[tokio::test]
async fn a_malformed_failure_record_is_skipped_and_counted() {
    let redis = TestRedis::start().await;
    let prefix = support::unique_prefix("http-failures");
    let store = RedisStore::builder(redis.url())
        .prefix(&prefix)
        .build()
        .await
        .unwrap();
    let router = FailoverRouter::new(CircuitBreaker::builder().store(store).build().unwrap());
    let _ = router
        .route_task(
            "task-1",
            ["agent-9"],
            |_, ()| async { Err::<(), _>("boom") },
            (),
        )
        .await;
    let mut conn = redis.connection().await;
    let _: String = conn
        .xadd(format!("{prefix}:failures"), "*", &[("garbage", "only")])
        .await
        .unwrap();
    let app = http::router(AppState::new(router));

    let (status, body) = send(&app, get("/api/circuit-breaker/failures")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let records = body.as_array().unwrap();
    assert_eq!(records.len(), 1, "{body}");
    assert_eq!(records[0]["task_id"], "task-1");
    assert_eq!(records[0]["reason"], "boom");
    let text = metrics_text(&app).await;
    assert!(
        text.contains("fleet_breaker_journal_entries_skipped_total 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_routing_events_counter_that_is_not_a_number_does_not_hide_the_fleet() {
    let redis = TestRedis::start().await;
    let (app, prefix) = app_on_redis(&redis).await;
    let mut conn = redis.connection().await;
    conn.set::<_, _, ()>(format!("{prefix}:routing_events"), "abc")
        .await
        .unwrap();
    let (status, health) = send(&app, get("/api/circuit-breaker/health")).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["total_agents"], 3, "{health}");
    assert_eq!(health["agents"]["good-1"]["state"], "closed");
    assert!(
        metrics_text(&app)
            .await
            .contains("fleet_breaker_store_up 1")
    );
}
