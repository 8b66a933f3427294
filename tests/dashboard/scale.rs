//! The dashboard at 10,000 agents: open circuits first, no more than a page
//! of rows in the DOM, each render of the list quick, and the search box.
//!
//! `FLEET_BREAKER_SCREENSHOT=1` also writes the page to
//! `docs/dashboard-10k.png`.

use std::time::Duration;

use fantoccini::{Client, Locator};
use fleet_breaker::{AgentId, CircuitBreaker, RedisStore};
use futures::StreamExt;
use serde::Deserialize;

use crate::browser::{Browser, install_crypto_provider};
use crate::page::{screenshot, wait_for_page_within};
use crate::service::Server;
use crate::support;

const AGENTS: usize = 10_000;
/// Every this-many-th agent is driven open.
const OPEN_EVERY: usize = 250;
/// Rows the page shows at first (`PAGE_ROWS` in agentlist.js).
const PAGE_ROWS: usize = 100;
/// The longest one render of the list may take: generous, for a browser
/// sharing two loaded cores with the build.
const RENDER_BOUND_MS: f64 = 1_000.0;
/// How long the first load may take: the service reads 10,000 agents.
const FIRST_LOAD: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_at_ten_thousand_agents_stays_responsive_and_searches() {
    let Some(browser) = Browser::find() else {
        return;
    };
    install_crypto_provider();
    support::init_tracing();
    let redis = support::TestRedis::start().await;
    let prefix = support::unique_prefix("dashboard-10k");
    let open = seed_many(&redis.url(), &prefix).await;
    // One read of 10,000 agents is 10,000 store calls, 64 in flight: on two
    // loaded cores some outlast the default 100 ms timeout.
    let server = Server::start_with(&redis.url(), &prefix, &["--redis-timeout", "5s"]).await;
    let (_driver, client) = browser.open().await;
    client.goto(&server.base).await.expect("load the dashboard");

    let total = AGENTS.to_string();
    wait_for_page_within(&client, "10,000 agents loaded", FIRST_LOAD, |p| {
        p.cards["total-agents"] == total && p.rows.len() == PAGE_ROWS
    })
    .await;
    let shown = list(&client).await;
    assert_eq!(shown.rows.len(), PAGE_ROWS, "one page of rows, not 10,000");
    let open_rows = shown.rows.iter().take_while(|(_, s)| s == "open").count();
    assert_eq!(open_rows, open, "the open circuits first: {:?}", shown.rows);
    assert!(
        shown.count.contains("100 of 10,000"),
        "count: {:?}",
        shown.count
    );

    // "Show more" adds a page.
    client
        .find(Locator::Css("#show-more"))
        .await
        .expect("the Show more button")
        .click()
        .await
        .expect("click Show more");
    wait_for_page_within(&client, "a second page", FIRST_LOAD, |p| {
        p.rows.len() == 2 * PAGE_ROWS
    })
    .await;

    // The search, case-insensitive: agent-0000 .. agent-0009.
    client
        .find(Locator::Css("#agent-search"))
        .await
        .expect("the search box")
        .send_keys("Agent-000")
        .await
        .expect("type in the search box");
    let page = wait_for_page_within(&client, "the search's ten agents", FIRST_LOAD, |p| {
        p.rows.len() == 10
    })
    .await;
    for id in page.rows.keys() {
        assert!(id.starts_with("agent-000"), "{id} shown for Agent-000");
    }
    assert_eq!(page.rows["agent-0000"].state, "open");
    let shown = list(&client).await;
    assert!(
        shown.count.contains("10 of 10 matching"),
        "count: {:?}",
        shown.count
    );

    // Every render of the list, load, page and search, was quick.
    assert!(shown.renders >= 3, "renders timed: {}", shown.renders);
    assert!(
        shown.slowest_ms < RENDER_BOUND_MS,
        "the slowest render of the list took {:.0} ms",
        shown.slowest_ms
    );
    println!(
        "10,000 agents: {} renders of the list, the slowest {:.1} ms",
        shown.renders, shown.slowest_ms
    );

    if std::env::var_os("FLEET_BREAKER_SCREENSHOT").is_some_and(|v| v == "1") {
        let search = client
            .find(Locator::Css("#agent-search"))
            .await
            .expect("the search box");
        // Backspace over the query, as a user would (WebDriver's clear
        // fires no input event).
        search
            .send_keys(&"\u{E003}".repeat("Agent-000".len()))
            .await
            .expect("clear the search");
        wait_for_page_within(&client, "the first page again", FIRST_LOAD, |p| {
            p.rows.len() == PAGE_ROWS
        })
        .await;
        screenshot(&client, "dashboard-10k.png").await;
    }
    client.close().await.expect("close the browser");
}

/// The list as shown, in order, and the renders timed so far.
#[derive(Debug, Deserialize)]
struct Shown {
    rows: Vec<(String, String)>,
    count: String,
    renders: usize,
    slowest_ms: f64,
}

async fn list(client: &Client) -> Shown {
    let script = r"
        const renders = performance.getEntriesByName('fleet-breaker:agents');
        return {
          rows: [...document.querySelectorAll('#agents [data-agent]')]
            .map((el) => [el.dataset.agent, el.dataset.state]),
          count: document.querySelector('#agents-count').textContent,
          renders: renders.length,
          slowest_ms: Math.max(0, ...renders.map((r) => r.duration)),
        };";
    let value = client.execute(script, vec![]).await.expect("read the list");
    serde_json::from_value(value).expect("the list")
}

/// [`AGENTS`] agents `agent-0000` .. `agent-9999` under `prefix`, one call
/// each, every [`OPEN_EVERY`]th driven open; returns how many are open.
async fn seed_many(url: &str, prefix: &str) -> usize {
    // A long timeout: a call that outlasts the default 100 ms (two loaded
    // cores) would be decided locally, in degraded mode, and its agent
    // never written.
    let store = RedisStore::builder(url)
        .prefix(prefix)
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .expect("connect the seeding pod");
    let pod = CircuitBreaker::builder()
        .store(store)
        .local_cache(false)
        .build()
        .expect("the seeding pod");
    let threshold = pod.config().failure_threshold;
    futures::stream::iter(0..AGENTS)
        .map(|i| {
            let pod = pod.clone();
            async move {
                let agent = AgentId::new(&format!("agent-{i:04}")).expect("agent id");
                if i % OPEN_EVERY == 0 {
                    for _ in 0..threshold {
                        let _ = pod.call(&agent, async { Err::<(), _>("down") }).await;
                    }
                } else {
                    pod.call(&agent, async { Ok::<_, &str>(()) })
                        .await
                        .expect("a call to a closed circuit");
                }
            }
        })
        .buffer_unordered(64)
        .collect::<()>()
        .await;
    AGENTS.div_ceil(OPEN_EVERY)
}
