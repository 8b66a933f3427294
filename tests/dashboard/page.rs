//! The page as the tests see it: one JavaScript reading of what it shows,
//! bounded waits on it, and the few things a user does.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::support::poll_within;
use crate::{LIVE, TOKEN_KEY};
use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::{Client, Locator};
use serde::Deserialize;
use serde_json::json;

/// What the page shows, read in one round trip by [`PAGE_SCRIPT`].
#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    pub(crate) cards: BTreeMap<String, String>,
    pub(crate) mode: String,
    pub(crate) store: String,
    pub(crate) status: String,
    pub(crate) status_kind: String,
    pub(crate) rows: BTreeMap<String, Row>,
    pub(crate) transitions: Vec<Shown>,
    pub(crate) text: String,
}

impl Page {
    pub(crate) fn shows_transition(&self, agent: &str, to: &str, reason: &str) -> bool {
        self.transitions
            .iter()
            .any(|t| t.agent == agent && t.to == to && t.reason == reason)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Row {
    pub(crate) state: String,
    pub(crate) successes: String,
    pub(crate) failures: String,
    pub(crate) retry: String,
    pub(crate) forced: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Shown {
    pub(crate) agent: String,
    pub(crate) to: String,
    pub(crate) reason: String,
}

const PAGE_SCRIPT: &str = r#"
const text = (root, s) => root.querySelector(s).textContent.trim();
const cards = {};
for (const id of ['open-circuits', 'half-open-circuits', 'healthy-agents', 'total-agents', 'routing-events']) {
  cards[id] = text(document, '#' + id);
}
const rows = {};
for (const el of document.querySelectorAll('#agents [data-agent]')) {
  rows[el.dataset.agent] = {
    state: el.dataset.state,
    successes: text(el, '.agent-successes'),
    failures: text(el, '.agent-failures'),
    retry: text(el, '.agent-retry-after'),
    forced: !el.querySelector('.agent-forced-tag').hidden,
  };
}
const status = document.querySelector('#status');
return {
  cards,
  mode: document.querySelector('#connection').dataset.mode,
  store: document.querySelector('#store-status').dataset.store,
  status: status.textContent,
  status_kind: status.dataset.kind,
  rows,
  transitions: [...document.querySelectorAll('#transitions [data-agent]')].map((li) => ({
    agent: li.dataset.agent, to: li.dataset.to, reason: li.dataset.reason,
  })),
  text: document.body.innerText,
};
"#;

async fn read_page(client: &Client) -> Option<Page> {
    let value = client.execute(PAGE_SCRIPT, vec![]).await.ok()?;
    serde_json::from_value(value).ok()
}

/// Reads the page until `ready` holds; panics with the last reading after
/// [`LIVE`].
pub(crate) async fn wait_for_page(
    client: &Client,
    what: &str,
    ready: impl Fn(&Page) -> bool,
) -> Page {
    wait_for_page_within(client, what, LIVE, ready).await
}

/// [`wait_for_page`] with a bound of its own.
pub(crate) async fn wait_for_page_within(
    client: &Client,
    what: &str,
    bound: Duration,
    ready: impl Fn(&Page) -> bool,
) -> Page {
    let ready = &ready;
    let page = poll_within(bound, Duration::from_millis(50), || async move {
        read_page(client).await.filter(|p| ready(p))
    })
    .await;
    match page {
        Some(page) => page,
        None => panic!(
            "the page did not show {what} within {bound:?}; it shows:\n{:#?}",
            read_page(client).await
        ),
    }
}

pub(crate) async fn set_token(client: &Client, token: &str) {
    client
        .execute(
            "sessionStorage.setItem(arguments[0], arguments[1]);",
            vec![json!(TOKEN_KEY), json!(token)],
        )
        .await
        .expect("store the admin token");
}

pub(crate) async fn click(client: &Client, agent: &str, action: &str) {
    let selector = format!(r#"[data-agent="{agent}"] button[data-action="{action}"]"#);
    client
        .find(Locator::Css(&selector))
        .await
        .unwrap_or_else(|e| panic!("no button {selector}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {selector}: {e}"));
}

/// Writes the page, settled, to `docs/<name>`.
pub(crate) async fn screenshot(client: &Client, name: &str) {
    // No hover or focus ring on the last button clicked.
    let away = MouseActions::new("mouse".to_owned()).then(PointerAction::MoveTo {
        duration: None,
        x: 0.0,
        y: 0.0,
    });
    client
        .perform_actions(away)
        .await
        .expect("move the mouse away");
    client
        .execute("document.activeElement?.blur();", vec![])
        .await
        .expect("blur");
    // Let the arrival animations end (the live badge's pulse never does).
    let settled = "return document.getAnimations()\
                   .every((a) => a.effect.getTiming().iterations === Infinity);";
    poll_within(LIVE, Duration::from_millis(50), || async {
        let done = client.execute(settled, vec![]).await;
        (done.expect("read the animations") == json!(true)).then_some(())
    })
    .await
    .expect("the page stops animating");
    let png = client.screenshot().await.expect("take a screenshot");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    std::fs::create_dir_all(path.parent().expect("docs/")).expect("create docs/");
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    println!("wrote {}", path.display());
}
