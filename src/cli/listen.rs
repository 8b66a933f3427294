//! How `serve` and `demo` take connections: the listener's flags, the
//! address bound (the demo moves to the next free port when its default is
//! taken), and serving until the first stop.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use clap::Args;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::args::parse_duration;
use super::{CliError, Stop, stopped};
use crate::http::{self, ServeOptions};

/// Ports tried after a default port that is taken, before any free port.
const FALLBACK_PORTS: u16 = 20;

/// The limits of the HTTP listener of `serve` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Most connections served at once, SSE streams included; one more is
    /// answered 503 and closed. Keep it under the open-file limit (ulimit -n).
    #[arg(long, hide_env_values = true, env = "FLEET_BREAKER_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000), value_name = "N")]
    pub max_connections: u32,
    /// Time a client has to send a request's line and headers.
    #[arg(long, hide_env_values = true, env = "FLEET_BREAKER_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body, from its headers.
    #[arg(long, hide_env_values = true, env = "FLEET_BREAKER_BODY_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub body_read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request (an SSE
    /// stream being sent is never idle).
    #[arg(long, hide_env_values = true, env = "FLEET_BREAKER_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,
    /// On Ctrl-C, SIGTERM or the end of --duration: the time requests in
    /// flight get to finish before their connections are closed.
    #[arg(long, hide_env_values = true, env = "FLEET_BREAKER_SHUTDOWN_GRACE", default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub shutdown_grace: Duration,
}

impl ListenArgs {
    /// The listener's limits.
    pub(super) fn options(&self) -> ServeOptions {
        ServeOptions {
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            idle_timeout: self.idle_timeout,
            shutdown_grace: self.shutdown_grace,
        }
    }
}

/// Listens on `bind`, or says why it cannot.
pub(super) async fn bind(bind: &str) -> Result<TcpListener, CliError> {
    TcpListener::bind(bind)
        .await
        .map_err(|e| CliError::new(format!("cannot listen on {bind}: {e}")))
}

/// Listens on `default`, or when its port is taken on the next free one of
/// the [`FALLBACK_PORTS`] after it (else any free port); says which.
pub(super) async fn bind_or_next_free(default: &str) -> Result<TcpListener, CliError> {
    let first: SocketAddr = default.parse().map_err(|e| {
        CliError::new(format!(
            "{default} is not an address with a port (e.g. 127.0.0.1:8080): {e}"
        ))
    })?;
    let next_ports = (1..=FALLBACK_PORTS).filter_map(|n| first.port().checked_add(n));
    for port in std::iter::once(first.port()).chain(next_ports).chain([0]) {
        let addr = SocketAddr::new(first.ip(), port);
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                if port != first.port() {
                    let taken = first.port();
                    let chosen = listener.local_addr().map_or(port, |a| a.port());
                    println!(
                        "port {taken} is taken: using port {chosen} instead (--bind ADDR chooses)"
                    );
                }
                return Ok(listener);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(e) => return Err(CliError::new(format!("cannot listen on {addr}: {e}"))),
        }
    }
    Err(CliError::new(format!(
        "cannot listen on {default}: that port, the {FALLBACK_PORTS} after it and any free port are taken"
    )))
}

/// The address `listener` is bound to.
pub(super) fn local_addr(listener: &TcpListener) -> Result<SocketAddr, CliError> {
    listener
        .local_addr()
        .map_err(|e| CliError::new(format!("cannot read the address bound: {e}")))
}

/// Serves `app` on `listener` until the first stop on `stop`; then
/// `on_stop` runs (it ends the SSE streams), and the listener shuts down
/// within the grace of `options`. Returns why it stopped.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    stop: &watch::Receiver<Option<Stop>>,
    on_stop: impl FnOnce() + Send,
) -> Stop {
    let mut signal = stop.clone();
    http::serve(listener, app, options, async move {
        stopped(&mut signal).await;
        on_stop();
    })
    .await;
    stopped(&mut stop.clone()).await
}
