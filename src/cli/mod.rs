//! The `fleet-breaker` command line (feature `service`): `serve`, `demo`,
//! `status`, `watch`, `reset` and `force`.
//!
//! [`Cli`] is the clap parser itself, public so that a deployment file can
//! be checked against it (the repository's test of `docker-compose.yml`
//! does). [`main`] parses the process's arguments and runs the command.
//!
//! Every failure is one line on stderr, `error: ...`, and exit code 1 (2 for
//! a command line clap refuses); never a backtrace.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

mod args;
mod connect;
mod demo;
mod output;
mod serve;
mod status;
mod watch;

pub use args::{
    Cli, Command, DemoArgs, ForceArgs, ForceState, ResetArgs, Secret, SecretUrl, ServeArgs,
    StatusArgs, StoreArgs, WatchArgs,
};
pub use connect::Connection;

/// A command's failure: printed as one line, `error: ...`; or the end of
/// a command whose stdout reader went away ([`CliError::is_closed_stdout`]).
#[derive(Debug)]
pub struct CliError {
    message: String,
    closed_stdout: bool,
}

impl CliError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            closed_stdout: false,
        }
    }

    /// The command's stdout reader went away: not a failure.
    fn closed_stdout() -> Self {
        Self {
            message: "stdout was closed".to_owned(),
            closed_stdout: true,
        }
    }

    /// Whether the command stopped because its stdout was closed
    /// (`fleet-breaker status | head -1`): no failure, [`main`] exits 0
    /// quietly.
    #[must_use]
    pub fn is_closed_stdout(&self) -> bool {
        self.closed_stdout
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for CliError {
    fn from(error: E) -> Self {
        Self::new(error.to_string())
    }
}

/// Parses the process's arguments and runs the command.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.command);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&CliError::new(format!("cannot start the runtime: {error}"))),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is_closed_stdout() => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &CliError) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::FAILURE
}

/// Runs a parsed command line.
///
/// # Errors
///
/// [`CliError`] with the one line to print.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => serve::run(&cli.store, args).await,
        Command::Demo(args) => demo::run(&cli.store, args).await,
        Command::Status(args) => status::status(&cli.store, args).await,
        Command::Watch(args) => watch::run(&cli.store, args).await,
        Command::Reset(args) => status::reset(&cli.store, args).await,
        Command::Force(args) => status::force(&cli.store, args).await,
    }
}

/// Logs to stderr, filtered by `RUST_LOG`; by default `info` for the
/// long-running commands and `warn` for the others.
fn init_logging(command: &Command) {
    use tracing_subscriber::EnvFilter;
    // The demo prints each transition itself; the library's own log line
    // of it would say it twice.
    let default = match command {
        Command::Serve(_) => "info",
        Command::Demo(_) => "info,fleet_breaker::breaker=warn",
        // The redis crate's own warnings (a cluster node refusing, say)
        // would repeat, in its words, the one error line the command prints.
        _ => "warn,redis=error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Resolves when the process is asked to stop (Ctrl-C, or SIGTERM on Unix),
/// or after `limit` when one is given.
async fn shutdown_signal(limit: Option<Duration>) {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let limit = async {
        match limit {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
        () = limit => {}
    }
}
