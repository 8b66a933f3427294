//! The health listing with parameters: filtered by state, paged by agent
//! id, the counts alone, and bad parameters.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use fleet_breaker::http::{self, AppState};
use fleet_breaker::router::FailoverRouter;
use fleet_breaker::{BreakerConfig, CircuitBreaker, ForceMode, Permit};
use serde_json::Value;

use crate::{agent, error_of, get, send};

/// A fleet of 12 agents on the embedded store: `a-00` .. `a-09` closed
/// (`a-03` forced closed), `b-open` open, `c-forced` forced open, and
/// `d-half` half-open (its probe held by the returned permit).
async fn fleet() -> (Router, CircuitBreaker, Permit) {
    let config = BreakerConfig::builder()
        .base_backoff(Duration::from_millis(20))
        .build()
        .unwrap();
    let breaker = CircuitBreaker::builder().config(config).build().unwrap();
    let ok = || async { Ok::<_, std::io::Error>(()) };
    let fail = || async { Err::<(), _>(std::io::Error::other("down")) };
    for i in 0..10 {
        breaker
            .call(&agent(&format!("a-{i:02}")), ok())
            .await
            .unwrap();
    }
    breaker
        .force(&agent("a-03"), ForceMode::Closed, None)
        .await
        .unwrap();
    breaker.call(&agent("c-forced"), ok()).await.unwrap();
    breaker
        .force(&agent("c-forced"), ForceMode::Open, None)
        .await
        .unwrap();
    for _ in 0..breaker.config().failure_threshold {
        let _ = breaker.call(&agent("d-half"), fail()).await;
    }
    // d-half: once its 20 ms backoff is over, take its probe and keep it.
    let probe =
        crate::support::wait_for("d-half goes half-open", Duration::from_secs(2), || async {
            breaker.acquire(&agent("d-half")).await.ok()
        })
        .await;
    // b-open: open (it stays so until a call after its backoff probes it).
    for _ in 0..breaker.config().failure_threshold {
        let _ = breaker.call(&agent("b-open"), fail()).await;
    }
    let app = http::router(AppState::new(FailoverRouter::new(breaker.clone())));
    (app, breaker, probe)
}

fn ids(body: &Value) -> Vec<&str> {
    body["agents"]
        .as_object()
        .unwrap_or_else(|| panic!("no agents in {body}"))
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn health_filters_by_state_and_keeps_the_fleet_counts() {
    let (app, _breaker, _probe) = fleet().await;
    let (status, all) = send(&app, get("/api/circuit-breaker/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["total_agents"], 13);
    assert!(all.get("next").is_none(), "the original shape: {all}");

    for (query, expected) in [
        ("state=open", vec!["b-open", "c-forced"]),
        ("state=half_open", vec!["d-half"]),
        ("state=open,half_open", vec!["b-open", "c-forced", "d-half"]),
        ("state=corrupt", vec![]),
    ] {
        let (status, body) = send(&app, get(&format!("/api/circuit-breaker/health?{query}"))).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(ids(&body), expected, "{query}");
        for field in [
            "total_agents",
            "open_circuits",
            "half_open_circuits",
            "healthy_agents",
        ] {
            assert_eq!(body[field], all[field], "{query}: {field}");
        }
        assert_eq!(body["store"], "ok");
        assert_eq!(body["next"], Value::Null, "{query}: one page");
    }
    let (_, closed) = send(&app, get("/api/circuit-breaker/health?state=closed")).await;
    assert_eq!(ids(&closed).len(), 10, "a-03 forced closed is closed");
    assert_eq!(closed["agents"]["a-03"]["state"], "forced_closed");
    assert_eq!(
        closed["agents"]["a-05"], all["agents"]["a-05"],
        "each agent as in the full listing"
    );
}

#[tokio::test]
async fn health_pages_by_agent_id_with_a_next_cursor() {
    let (app, _breaker, _probe) = fleet().await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &after {
            Some(after) => format!("limit=5&after={after}"),
            None => "limit=5".to_owned(),
        };
        let (status, body) = send(&app, get(&format!("/api/circuit-breaker/health?{query}"))).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        pages += 1;
        let page = ids(&body);
        assert!(page.len() <= 5, "{query}: {page:?}");
        seen.extend(page.iter().map(|id| (*id).to_owned()));
        match body["next"].as_str() {
            Some(next) => {
                assert_eq!(Some(&next), page.last(), "next is the page's last id");
                after = Some(next.to_owned());
            }
            None => break,
        }
        assert!(pages < 10, "no end to the pages");
    }
    assert_eq!(pages, 3, "13 agents in pages of 5");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "each agent once, in id order");
    assert_eq!(seen.len(), 13);

    // Filter and cursor together: the not-closed agents after b-open.
    let (_, body) = send(
        &app,
        get("/api/circuit-breaker/health?state=open,half_open&after=b-open&limit=1"),
    )
    .await;
    assert_eq!(ids(&body), ["c-forced"]);
    assert_eq!(body["next"], "c-forced");
}

#[tokio::test]
async fn health_summary_answers_the_counts_alone() {
    let (app, _breaker, _probe) = fleet().await;
    let (_, all) = send(&app, get("/api/circuit-breaker/health")).await;
    for path in [
        "/api/circuit-breaker/health/summary",
        "/api/circuit-breaker/health?agents=none",
    ] {
        let (status, body) = send(&app, get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let mut expected = all.clone();
        expected.as_object_mut().unwrap().remove("agents");
        assert_eq!(body, expected, "{path}");
        assert_eq!(body["open_circuits"], 2);
        assert_eq!(body["half_open_circuits"], 1);
        assert_eq!(body["healthy_agents"], 10);
    }
}

#[tokio::test]
async fn bad_health_parameters_are_400s_naming_them() {
    let (app, _breaker, _probe) = fleet().await;
    for (query, named, accepted) in [
        ("state=opened", "state", "half_open"),
        ("limit=0", "limit", "10000"),
        ("limit=lots", "limit", "10000"),
        ("after=", "after", "agent id"),
        ("agents=some", "agents", "none"),
        ("sort=state", "sort", "state, limit, after"),
    ] {
        let (status, body) = send(&app, get(&format!("/api/circuit-breaker/health?{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let error = error_of(&body);
        assert!(error.contains(named), "{query}: {error}");
        assert!(error.contains(accepted), "{query}: {error}");
    }
}
