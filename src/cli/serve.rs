//! `fleet-breaker serve`: the HTTP service of a fleet.

use tokio::net::TcpListener;

use super::{CliError, Connection, Secret, SecretUrl, ServeArgs, StoreArgs, shutdown_signal};
use crate::alerts::{WebhookHandle, Webhooks};
use crate::http::{self, AdminToken, AppState, Metrics};
use crate::router::FailoverRouter;
use crate::store::redact_url;

/// Serves the API, dashboard, SSE and metrics of the fleet in Redis until
/// Ctrl-C or SIGTERM.
pub(super) async fn run(store: &StoreArgs, args: ServeArgs) -> Result<(), CliError> {
    let admin_token = admin_token(args.admin_token.as_ref())?;
    let connection = Connection::redis(store).await?;
    let metrics = Metrics::new();
    let breaker = connection.breaker(&instance_name("serve"), Some(&metrics), true)?;
    metrics.watch(&breaker);
    let webhooks = start_webhooks(&args, &connection, &metrics, breaker.instance_id()).await?;
    let state = AppState::new(FailoverRouter::new(breaker))
        .with_admin_token(admin_token)
        .with_metrics(metrics)
        .with_health_max_age(args.health_max_age);
    let notes: Vec<String> = args
        .webhooks
        .iter()
        .map(|url| format!("webhook: {}", redact_url(url.expose())))
        .collect();
    let served = serve_until_stopped(&args.bind, state, &connection, &notes, None).await;
    if let Some(webhooks) = webhooks {
        webhooks.shutdown().await;
    }
    served
}

/// Delivers every transition to `--webhook` URLs, once fleet-wide, with
/// each attempt counted in `metrics`.
async fn start_webhooks(
    args: &ServeArgs,
    connection: &Connection,
    metrics: &Metrics,
    instance: &str,
) -> Result<Option<WebhookHandle>, CliError> {
    let Some(store) = connection.redis.as_ref() else {
        return Ok(None);
    };
    if args.webhooks.is_empty() {
        return Ok(None);
    }
    let counted = metrics.clone();
    let hooks = Webhooks::builder(args.webhooks.iter().map(SecretUrl::expose))
        .max_tries(args.webhook_max_tries)
        .consumer(instance)
        .observer(move |url, outcome| counted.webhook_delivery(url, outcome))
        .build()?;
    Ok(Some(hooks.spawn_redis(store).await?))
}

/// The admin token from the flag or environment, checked; a warning when
/// there is none.
pub(super) fn admin_token(raw: Option<&Secret>) -> Result<Option<AdminToken>, CliError> {
    match raw.map(|s| s.expose().trim()).filter(|t| !t.is_empty()) {
        Some(token) => Ok(Some(AdminToken::new(token).map_err(|e| {
            CliError::new(format!("--admin-token / FLEET_BREAKER_ADMIN_TOKEN: {e}"))
        })?)),
        None => Ok(None),
    }
}

/// Binds `bind`, says where and how it serves, and serves `state` until a
/// stop signal (or `limit`).
pub(super) async fn serve_until_stopped(
    bind: &str,
    state: AppState,
    connection: &Connection,
    notes: &[String],
    limit: Option<std::time::Duration>,
) -> Result<(), CliError> {
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|e| CliError::new(format!("cannot listen on {bind}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::new(format!("cannot read the address bound: {e}")))?;
    println!("fleet-breaker serve: listening on http://{addr}");
    println!("  store: {}", connection.description);
    for note in notes {
        println!("  {note}");
    }
    if state.admin_enabled() {
        println!("  admin routes: enabled (Authorization: Bearer <admin token>)");
    } else {
        println!(
            "  admin routes: disabled (403); set FLEET_BREAKER_ADMIN_TOKEN or --admin-token to enable reset and force"
        );
        tracing::warn!("no admin token is configured: admin routes answer 403");
    }
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown_signal(limit))
        .await
        .map_err(|e| CliError::new(format!("the HTTP server failed: {e}")))
}

/// A name for this process's pod in the fleet: `ROLE@HOST:PID`.
pub(super) fn instance_name(role: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
    format!("{role}@{host}:{}", std::process::id())
}
