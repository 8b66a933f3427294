//! The dashboard at `GET /`, in a real browser: headless Chromium driven
//! through chromedriver (WebDriver, with fantoccini), against the service
//! and a private Redis.
//!
//! Needs `chromedriver` and `chromium` (Debian/Ubuntu: `apt-get install
//! chromium chromium-driver`; `scripts/test` installs them when run as
//! root). Set `CHROMEDRIVER` / `CHROME_BIN` to use others. Without them the
//! test prints why and passes, or fails when `CI` is set.
//!
//! Each test starts its own Redis, seeds five agents (one per kind of state)
//! from a second pod, runs `fleet-breaker serve` and a browser, and reads the
//! page with one script per poll (see `page.rs`).
//!
//! `scale.rs` loads 10,000 agents instead (open first, a page of rows, the
//! search box).
//!
//! `FLEET_BREAKER_SCREENSHOT=1` also writes the page to `docs/dashboard.png`
//! (and `scale.rs` to `docs/dashboard-10k.png`).
#![cfg(feature = "service")]

#[path = "../support/mod.rs"]
mod support;

mod browser;
mod labels;
mod page;
mod scale;
mod service;

use std::time::Duration;

use fantoccini::Client;
use fleet_breaker::{AgentId, BreakerConfig, CircuitBreaker, Permit, RedisStore};
use serde_json::{Value, json};

use browser::{Browser, Driver, cdp, install_crypto_provider};
use page::{click, screenshot, set_token, wait_for_page};
use service::Server;

const TOKEN: &str = "dashboard-test-token";
/// The page's sessionStorage key for the admin token (dashboard.js).
const TOKEN_KEY: &str = "fleet-breaker.admin-token";
/// How long the page may take to show a change.
const LIVE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_fleet_live_and_drives_the_admin_api() {
    let Some(fixture) = Fixture::start("dashboard-live").await else {
        return;
    };
    let (client, server) = (&fixture.client, &fixture.server);
    client.goto(&server.base).await.expect("load the dashboard");
    let page = wait_for_page(client, "the agents with the stream live", |p| {
        p.mode == "sse" && p.rows.len() == 5
    })
    .await;

    // Cards and rows say what the health API says.
    let health = server.get("/api/circuit-breaker/health").await;
    for (card, field) in [
        ("open-circuits", "open_circuits"),
        ("half-open-circuits", "half_open_circuits"),
        ("healthy-agents", "healthy_agents"),
        ("total-agents", "total_agents"),
    ] {
        assert_eq!(page.cards[card], health[field].to_string(), "#{card}");
    }
    assert_eq!(page.store, "ok");
    for (agent, metrics) in health["agents"].as_object().expect("agents") {
        let row = &page.rows[agent];
        let counters = &metrics["metrics"];
        assert_eq!(row.state, metrics["state"], "{agent}: state");
        assert_eq!(
            row.successes,
            counters["success_count"].to_string(),
            "{agent}: successes since the last failure"
        );
        assert_eq!(
            row.failures,
            counters["failure_count"].to_string(),
            "{agent}"
        );
    }
    assert_eq!(page.rows["checkout-api"].state, "closed");
    assert_eq!(page.rows["search-api"].state, "open");
    assert_eq!(page.rows["inventory-api"].state, "half_open");
    assert_eq!(page.cards["open-circuits"], "1");
    assert_eq!(page.cards["half-open-circuits"], "1");
    assert_eq!(page.cards["total-agents"], "5");
    // The original showed NaN% (a rate) for an agent with no calls; the
    // page shows the streak counters as they are.
    assert_eq!(page.rows["fresh-agent"].successes, "0");
    assert!(
        !page.text.contains("NaN"),
        "NaN on the page:\n{}",
        page.text
    );

    // The open circuit counts down locally, second by second.
    let first = page.rows["search-api"].retry.clone();
    assert!(first.ends_with('s'), "retry-after shown as {first:?}");
    wait_for_page(client, "the retry-after countdown ticking", |p| {
        p.rows["search-api"].retry != first
    })
    .await;

    // A force made through the API shows up without a reload, from the stream.
    server.force("checkout-api", "open").await;
    let page = wait_for_page(client, "checkout-api forced open", |p| {
        p.cards["open-circuits"] == "2"
            && p.rows["checkout-api"].state == "forced_open"
            && p.rows["checkout-api"].forced
            && p.shows_transition("checkout-api", "forced_open", "forced")
    })
    .await;
    assert_eq!(page.rows["checkout-api"].retry, "until changed");

    // The admin buttons: a wrong token is forgotten on the 401 ...
    set_token(client, "not-the-token").await;
    click(client, "payments-api", "force-closed").await;
    let page = wait_for_page(client, "the 401 reported", |p| p.status_kind == "error").await;
    assert!(
        page.status.contains("token"),
        "status line: {:?}",
        page.status
    );
    assert_eq!(page.rows["payments-api"].state, "closed");
    let kept = client
        .execute(
            "return sessionStorage.getItem(arguments[0]);",
            vec![json!(TOKEN_KEY)],
        )
        .await
        .expect("read sessionStorage");
    assert_eq!(kept, Value::Null, "the rejected token is forgotten");
    // ... and the right one works.
    set_token(client, TOKEN).await;
    click(client, "payments-api", "force-closed").await;
    wait_for_page(client, "payments-api forced closed", |p| {
        p.rows["payments-api"].state == "forced_closed" && p.status_kind == "ok"
    })
    .await;
    let health = server.get("/api/circuit-breaker/health").await;
    assert_eq!(health["agents"]["payments-api"]["state"], "forced_closed");
    // Force open asks for a confirmation first; the token is asked no more.
    click(client, "fresh-agent", "force-open").await;
    client.accept_alert().await.expect("confirm force open");
    wait_for_page(client, "fresh-agent forced open", |p| {
        p.rows["fresh-agent"].state == "forced_open" && p.cards["open-circuits"] == "3"
    })
    .await;
    click(client, "payments-api", "auto").await;
    wait_for_page(client, "payments-api back to closed", |p| {
        p.rows["payments-api"].state == "closed"
    })
    .await;

    // Nothing was asked of any other host.
    let urls = client
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name)\
             .concat(performance.getEntriesByType('navigation').map(e => e.name));",
            vec![],
        )
        .await
        .expect("read the resource timings");
    let urls: Vec<String> = serde_json::from_value(urls).expect("a list of URLs");
    assert!(
        urls.iter().any(|u| u.ends_with("/dashboard.js")),
        "{urls:?}"
    );
    for url in &urls {
        assert!(url.starts_with(&server.base), "off-origin request: {url}");
    }

    if std::env::var_os("FLEET_BREAKER_SCREENSHOT").is_some_and(|v| v == "1") {
        screenshot(client, "dashboard.png").await;
    }
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_polls_the_health_every_two_seconds_while_the_stream_fails() {
    let Some(fixture) = Fixture::start("dashboard-polling").await else {
        return;
    };
    let (client, server) = (&fixture.client, &fixture.server);
    // The browser fails every request for the event stream.
    cdp(client, "Network.enable", json!({})).await;
    cdp(
        client,
        "Network.setBlockedURLs",
        json!({"urls": ["*/api/circuit-breaker/events*"]}),
    )
    .await;
    client.goto(&server.base).await.expect("load the dashboard");
    wait_for_page(client, "the agents, polled", |p| {
        p.mode == "polling" && p.rows.len() == 5
    })
    .await;

    server.force("checkout-api", "open").await;
    wait_for_page(client, "checkout-api forced open, seen by polling", |p| {
        p.cards["open-circuits"] == "2"
            && p.rows["checkout-api"].state == "forced_open"
            && p.shows_transition("checkout-api", "forced_open", "observed")
    })
    .await;
    fixture.finish().await;
}

/// One test's world: a private Redis with [`seed`]ed agents, the service,
/// and a headless browser on no page yet. Dropped in field order.
struct Fixture {
    client: Client,
    server: Server,
    _probe: Permit,
    _seeder: CircuitBreaker,
    _driver: Driver,
    _redis: support::TestRedis,
}

impl Fixture {
    /// `None` (the test skips) without chromedriver; see [`Browser::find`].
    async fn start(name: &str) -> Option<Fixture> {
        let browser = Browser::find()?;
        install_crypto_provider();
        support::init_tracing();
        let redis = support::TestRedis::start().await;
        let prefix = support::unique_prefix(name);
        let (seeder, probe) = seed(&redis.url(), &prefix).await;
        let server = Server::start(&redis.url(), &prefix).await;
        let (driver, client) = browser.open().await;
        Some(Fixture {
            client,
            server,
            _probe: probe,
            _seeder: seeder,
            _driver: driver,
            _redis: redis,
        })
    }

    async fn finish(self) {
        self.client
            .clone()
            .close()
            .await
            .expect("close the browser");
    }
}

/// Agents of every kind, made by a second pod on the same Redis and prefix:
/// `checkout-api` closed with successes, `payments-api` closed after a
/// failure, `search-api` open (45 s backoff), `inventory-api` half-open
/// (its probe is returned, held), `fresh-agent` known but never counted.
async fn seed(url: &str, prefix: &str) -> (CircuitBreaker, Permit) {
    let pod = |base_backoff: Duration| async move {
        let store = RedisStore::builder(url)
            .prefix(prefix)
            .build()
            .await
            .expect("connect the seeding pod");
        let config = BreakerConfig::builder()
            .base_backoff(base_backoff)
            .build()
            .expect("config");
        CircuitBreaker::builder()
            .store(store)
            .config(config)
            .local_cache(false)
            .build()
            .expect("the seeding pod")
    };
    let slow = pod(Duration::from_secs(45)).await;
    let fast = pod(Duration::from_millis(20)).await;
    let agent = |name: &str| AgentId::new(name).expect("agent id");
    let ok = || async { Ok::<_, std::io::Error>(()) };
    let fail = || async { Err::<(), _>(std::io::Error::other("boom")) };

    for _ in 0..3 {
        slow.call(&agent("checkout-api"), ok())
            .await
            .expect("success");
    }
    slow.call(&agent("payments-api"), ok())
        .await
        .expect("success");
    let _ = slow.call(&agent("payments-api"), fail()).await;
    for _ in 0..5 {
        let _ = slow.call(&agent("search-api"), fail()).await;
    }
    for _ in 0..5 {
        let _ = fast.call(&agent("inventory-api"), fail()).await;
    }
    slow.acquire(&agent("fresh-agent"))
        .await
        .expect("a fresh agent admits")
        .neutral()
        .await;

    // inventory-api: once its 20 ms backoff is over, take its probe and keep it.
    let probe = support::wait_for(
        "inventory-api goes half-open",
        Duration::from_secs(2),
        || async { fast.acquire(&agent("inventory-api")).await.ok() },
    )
    .await;
    (slow, probe)
}
