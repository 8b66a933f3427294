//! `GET /`: the live dashboard, static HTML, CSS and JavaScript embedded in
//! the binary (no build step, no request to any outside host).
//!
//! The page loads `/assets/dashboard.js` as an ES module, which imports the others
//! by relative URL; every asset is served under `/assets/`, with the path it is
//! imported or linked by.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use super::AppState;

const INDEX: &str = include_str!("dashboard/index.html");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The asset `dashboard/<file>`, served at `/assets/<file>`.
macro_rules! asset {
    ($file:literal, $content_type:expr) => {
        (
            concat!("/assets/", $file),
            $content_type,
            include_str!(concat!("dashboard/", $file)),
        )
    };
}

/// Every asset the page loads: (path, content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    asset!("dashboard.js", JAVASCRIPT),
    asset!("api.js", JAVASCRIPT),
    asset!("render.js", JAVASCRIPT),
    asset!("agentlist.js", JAVASCRIPT),
    asset!("transitions.js", JAVASCRIPT),
    asset!("window.js", JAVASCRIPT),
    asset!("admin.js", JAVASCRIPT),
    asset!("util.js", JAVASCRIPT),
    asset!("dashboard.css", CSS),
    asset!("agents.css", CSS),
    asset!("transitions.css", CSS),
];

/// The dashboard's routes: the page and one per asset.
pub(super) fn routes() -> Router<AppState> {
    ASSETS.iter().fold(
        Router::new().route("/", get(index)),
        |router, &(path, content_type, body)| {
            router.route(path, get(move || async move { serve(content_type, body) }))
        },
    )
}

async fn index() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-cache")],
        [(header::CONTENT_SECURITY_POLICY, CSP)],
        Html(INDEX),
    )
}

/// One asset's answer: `body` as `content_type`, revalidated on every load.
fn serve(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, content_type)],
        [(header::CACHE_CONTROL, "no-cache")],
        body,
    )
}

/// Only this origin: the page can load nothing from, and send nothing to,
/// any other host.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";
