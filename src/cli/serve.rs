//! `fleet-breaker serve`: the HTTP service of a fleet.

use tokio::net::TcpListener;

use super::{CliError, Connection, ServeArgs, StoreArgs, shutdown_signal};
use crate::http::{self, AdminToken, AppState, Metrics};
use crate::router::FailoverRouter;

/// Serves the API, dashboard, SSE and metrics of the fleet in Redis until
/// Ctrl-C or SIGTERM.
pub(super) async fn run(store: &StoreArgs, args: ServeArgs) -> Result<(), CliError> {
    let admin_token = admin_token(args.admin_token.as_deref())?;
    let connection = Connection::redis(store).await?;
    let metrics = Metrics::new();
    let breaker = connection.breaker(&instance_name("serve"), Some(&metrics), true)?;
    metrics.watch(&breaker);
    // WEBHOOKS-PENDING
    let _ = (&args.webhooks, args.webhook_max_tries);
    let state = AppState::new(FailoverRouter::new(breaker))
        .with_admin_token(admin_token)
        .with_metrics(metrics);
    serve_until_stopped(&args.bind, state, &connection, None).await?;
    Ok(())
}

/// The admin token from the flag or environment, checked; a warning when
/// there is none.
pub(super) fn admin_token(raw: Option<&str>) -> Result<Option<AdminToken>, CliError> {
    match raw.map(str::trim).filter(|t| !t.is_empty()) {
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
