//! `fleet-breaker serve`: the HTTP service of a fleet.

mod starting;

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::routing::future::RouteFuture;
use tokio::sync::watch;

use super::{
    CliError, Connection, Secret, ServeArgs, Stop, StoreArgs, listen, stop_signals, stopped,
};
use crate::alerts::{WebhookHandle, Webhooks, WebhooksBuilder};
use crate::http::{self, AdminToken, AppState, Metrics};
use crate::router::FailoverRouter;

/// Serves the API, dashboard, SSE and metrics of the fleet in Redis until
/// Ctrl-C or SIGTERM. When Redis does not answer at start, listens anyway:
/// `/healthz` answers 200, `/readyz` and the rest 503, until it does.
pub(super) async fn run(store: &StoreArgs, args: ServeArgs) -> Result<(), CliError> {
    let admin_token = admin_token(args.admin_token.as_ref())?;
    // Refuse a mistaken webhook (URL, option) before connecting to anything.
    webhooks(&args)?.max_tries(args.webhook_max_tries).build()?;
    let stop = stop_signals(None);
    let first_try = Connection::redis(store).await;
    if let Err(error) = &first_try
        && !error.is_store_unavailable()
    {
        return first_try.map(drop);
    }
    let listener = listen::bind(&args.bind).await?;
    let addr = listen::local_addr(&listener)?;
    let admin_enabled = admin_token.is_some();
    let (live_tx, live_rx) = watch::channel(None::<Live>);
    // Ready before it says so: a client that connects on the "listening"
    // line is served by the store.
    let (mut webhooks, waiting_for) = match first_try {
        Ok(connection) => {
            let webhooks = start(&args, admin_token.clone(), &connection, &live_tx).await?;
            println!("fleet-breaker serve: listening on http://{addr}");
            announce_store(&connection, &args, "");
            (webhooks, None)
        }
        Err(error) => {
            println!("fleet-breaker serve: listening on http://{addr}");
            println!(
                "  store: not answering yet ({error}); /readyz and the API answer 503 until it does"
            );
            (None, Some(admin_token))
        }
    };
    print_admin(admin_enabled);
    let closing = live_rx.clone();
    let app = Router::new().fallback_service(Current {
        live: live_rx,
        starting: starting::router(),
    });
    let server = tokio::spawn({
        let stop = stop.clone();
        let options = args.listen.options();
        async move {
            listen::serve(listener, app, options, &stop, move || {
                if let Some(live) = closing.borrow().as_ref() {
                    live.state.close_streams();
                }
            })
            .await
        }
    });
    if let Some(admin_token) = waiting_for
        && let Some(connection) = wait_for_store(store, stop.clone()).await?
    {
        webhooks = start(&args, admin_token, &connection, &live_tx).await?;
        announce_store(&connection, &args, " answers now: serving");
    }
    let stopped = server
        .await
        .map_err(|e| CliError::new(format!("the HTTP server failed: {e}")))?;
    if let Some(webhooks) = webhooks {
        // Bounded: a delivery in flight may wait on a slow receiver.
        let _ = tokio::time::timeout(WEBHOOKS_GRACE, webhooks.shutdown()).await;
    }
    println!("fleet-breaker serve: stopped ({stopped})");
    Ok(())
}

/// How long the webhook tasks get to end their attempt in flight on stop.
const WEBHOOKS_GRACE: Duration = Duration::from_millis(500);

/// Between two tries of a store that does not answer yet.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// What the service serves once the store answers.
#[derive(Debug)]
struct Live {
    state: AppState,
    router: Router,
}

/// The state over `connection`, served from now on; its webhooks.
async fn start(
    args: &ServeArgs,
    admin_token: Option<AdminToken>,
    connection: &Connection,
    live: &watch::Sender<Option<Live>>,
) -> Result<Option<WebhookHandle>, CliError> {
    let metrics = Metrics::new();
    let breaker = connection.breaker(&instance_name("serve"), Some(&metrics), true, true)?;
    metrics.watch(&breaker);
    let webhooks = start_webhooks(args, connection, &metrics, breaker.instance_id()).await?;
    let state = AppState::new(FailoverRouter::new(breaker))
        .with_admin_token(admin_token)
        .with_metrics(metrics)
        .with_health_max_age(args.health_max_age)
        .with_metrics_agents(args.metrics_agents);
    // One read of every agent, in the background: it puts right the census
    // fields of agents tripped before the census existed (an upgrade), so
    // the counts are the fleet's from the start.
    let reader = state.router().clone();
    tokio::spawn(async move {
        if let Err(error) = reader.health_status().await {
            tracing::debug!(%error, "serve: the first read of every agent failed");
        }
    });
    live.send_replace(Some(Live {
        router: http::router(state.clone()),
        state,
    }));
    Ok(webhooks)
}

/// Tries the store every [`STORE_RETRY`] until it answers (`Some`) or the
/// process stops (`None`).
async fn wait_for_store(
    store: &StoreArgs,
    mut stop: watch::Receiver<Option<Stop>>,
) -> Result<Option<Connection>, CliError> {
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return Ok(None),
            () = tokio::time::sleep(STORE_RETRY) => {}
        }
        match Connection::redis(store).await {
            Ok(connection) => return Ok(Some(connection)),
            Err(error) if error.is_store_unavailable() => {
                tracing::debug!(%error, "the store does not answer yet");
            }
            Err(error) => return Err(error),
        }
    }
}

/// Says which store it serves (the `store:` line ends with `note`), and
/// its webhooks.
fn announce_store(connection: &Connection, args: &ServeArgs, note: &str) {
    println!("  store: {}{note}", connection.description);
    for hook in &args.webhooks {
        println!("  webhook: {}", hook.shown());
    }
}

/// Says whether the admin routes are enabled, once (no log line repeats it).
pub(super) fn print_admin(enabled: bool) {
    if enabled {
        println!("  admin routes: enabled (Authorization: Bearer <admin token>)");
    } else {
        println!(
            "  admin routes: disabled (403); set FLEET_BREAKER_ADMIN_TOKEN or --admin-token to enable reset and force"
        );
    }
}

/// The router of the live state once there is one, else the starting one.
#[derive(Debug, Clone)]
struct Current {
    live: watch::Receiver<Option<Live>>,
    starting: Router,
}

impl tower_service::Service<Request> for Current {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = RouteFuture<std::convert::Infallible>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let mut router = match self.live.borrow().as_ref() {
            Some(live) => live.router.clone(),
            None => self.starting.clone(),
        };
        tower_service::Service::call(&mut router, request)
    }
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
    let hooks = webhooks(args)?
        .max_tries(args.webhook_max_tries)
        .consumer(instance)
        .observer(move |url, outcome| counted.webhook_delivery(url, outcome))
        .build()?;
    Ok(Some(hooks.spawn_redis(store).await?))
}

/// The `--webhook` values, parsed, in a builder (whose `build` checks
/// the URLs and options).
fn webhooks(args: &ServeArgs) -> Result<WebhooksBuilder, CliError> {
    let mut builder = Webhooks::builder(Vec::<String>::new());
    for arg in &args.webhooks {
        let hook = arg
            .parse(|var| std::env::var(var).ok())
            .map_err(CliError::new)?;
        builder = builder.webhook(hook.url, hook.options);
    }
    Ok(builder)
}

/// The admin token from the flag or environment, checked: `None` when not
/// given; a blank one (spaces, tabs) is refused like any other bad token,
/// never taken as "no token".
pub(super) fn admin_token(raw: Option<&Secret>) -> Result<Option<AdminToken>, CliError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let token = raw.expose().trim();
    if token.is_empty() {
        return Err(CliError::new(
            "--admin-token / FLEET_BREAKER_ADMIN_TOKEN is blank: give a token of at least 16 \
             characters, or leave it unset to disable the admin routes",
        ));
    }
    AdminToken::new(token)
        .map(Some)
        .map_err(|e| CliError::new(format!("--admin-token / FLEET_BREAKER_ADMIN_TOKEN: {e}")))
}

/// A name for this process's pod in the fleet: `ROLE@HOST:PID`.
pub(super) fn instance_name(role: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
    format!("{role}@{host}:{}", std::process::id())
}
