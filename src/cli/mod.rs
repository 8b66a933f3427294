//! The `fleet-breaker` command line (feature `service`): `serve`, `demo`,
//! `status`, `watch`, `reset`, `force` and `config`.
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
mod configure;
mod connect;
mod demo;
mod listen;
mod output;
mod serve;
mod status;
mod watch;
mod webhook_arg;

pub use args::{
    Cli, Command, ConfigArgs, DemoArgs, ForceArgs, ForceState, ResetArgs, Secret, SecretUrl,
    ServeArgs, StatusArgs, StoreArgs, WatchArgs,
};
pub use connect::Connection;
pub use listen::ListenArgs;
pub use webhook_arg::WebhookArg;

/// A command's failure: printed as one line, `error: ...`; or the end of
/// a command whose stdout reader went away ([`CliError::is_closed_stdout`]).
#[derive(Debug)]
pub struct CliError {
    message: String,
    /// The store did not answer (it may later): `serve` waits for it.
    store_unavailable: bool,
    closed_stdout: bool,
}

impl CliError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            store_unavailable: false,
            closed_stdout: false,
        }
    }

    /// A failure to reach the store (it may answer later), said in `message`.
    fn store_unavailable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            store_unavailable: true,
            closed_stdout: false,
        }
    }

    /// Whether the store did not answer (in time), as opposed to a mistake
    /// in the settings: worth trying again.
    fn is_store_unavailable(&self) -> bool {
        self.store_unavailable
    }

    /// The command's stdout reader went away: not a failure.
    fn closed_stdout() -> Self {
        Self {
            message: "stdout was closed".to_owned(),
            store_unavailable: false,
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

impl<E: std::error::Error + 'static> From<E> for CliError {
    fn from(error: E) -> Self {
        let store_unavailable = (&error as &dyn std::any::Any)
            .downcast_ref::<crate::store::StoreError>()
            .is_some_and(crate::store::StoreError::is_store_unavailable);
        Self {
            message: error.to_string(),
            store_unavailable,
            closed_stdout: false,
        }
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
        Command::Config(args) => configure::run(&cli.store, args).await,
    }
}

/// Logs to stderr, filtered by `RUST_LOG`; by default [`default_filter`].
fn init_logging(command: &Command) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_filter(command)));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// The log filter without `RUST_LOG`: `info` for the long-running
/// commands and `warn` for the others.
fn default_filter(command: &Command) -> &'static str {
    match command {
        Command::Serve(_) => "info",
        // The demo prints each transition itself; the library's own log line
        // of it would say it twice. Only that line is hidden: entering and
        // leaving degraded mode both show.
        Command::Demo(_) => "info,fleet_breaker::breaker::observe=warn",
        // The redis crate's own warnings (a cluster node refusing, say)
        // would repeat, in its words, the one error line the command prints.
        _ => "warn,redis=error",
    }
}

/// Why a long-running command stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Ctrl-C (SIGINT).
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// `--duration` elapsed.
    Elapsed(Duration),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Interrupt => f.write_str("Ctrl-C"),
            Self::Terminate => f.write_str("SIGTERM"),
            Self::Elapsed(limit) => write!(
                f,
                "--duration {} elapsed",
                humantime::format_duration(*limit)
            ),
        }
    }
}

/// The process's stop signals, caught from the moment this is made (so a
/// signal sent as soon as a command says it is ready is never missed).
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// The next signal, or `limit` elapsed when one is given.
    async fn next(&mut self, limit: Option<Duration>) -> Stop {
        let elapsed = async {
            match limit {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(unix)]
        {
            async fn on(signal: Option<&mut tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        if signal.recv().await.is_none() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = on(self.interrupt.as_mut()) => Stop::Interrupt,
                () = on(self.terminate.as_mut()) => Stop::Terminate,
                () = elapsed => Stop::Elapsed(limit.unwrap_or_default()),
            }
        }
        #[cfg(not(unix))]
        {
            let ctrl_c = async {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = ctrl_c => Stop::Interrupt,
                () = elapsed => Stop::Elapsed(limit.unwrap_or_default()),
            }
        }
    }
}

/// Resolves when the process is asked to stop (Ctrl-C, or SIGTERM on Unix),
/// or after `limit` when one is given.
async fn shutdown_signal(limit: Option<Duration>) {
    Signals::install().next(limit).await;
}

/// The first stop of the process (a signal, or `limit` elapsed), on the
/// channel returned; any signal after it ends the process at once (exit
/// code 130), whatever is still running.
fn stop_signals(limit: Option<Duration>) -> tokio::sync::watch::Receiver<Option<Stop>> {
    let mut signals = Signals::install();
    let (tx, rx) = tokio::sync::watch::channel(None);
    tokio::spawn(async move {
        let first = signals.next(limit).await;
        tx.send_replace(Some(first));
        let again = signals.next(None).await;
        eprintln!("fleet-breaker: {again} while stopping: exiting at once");
        std::process::exit(130);
    });
    rx
}

/// Resolves with the first stop that `stop` announces.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<Option<Stop>>) -> Stop {
    match stop.wait_for(Option::is_some).await {
        Ok(stop) => stop.unwrap_or(Stop::Terminate),
        // The signal task is gone: the runtime is shutting down.
        Err(_) => Stop::Terminate,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex, PoisonError};

    use clap::Parser;

    use super::*;

    /// A log line sink shared with the test.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `command`'s default filter lets through of a few events, each
    /// emitted with the target of the module that logs it in the library.
    fn logged(command: &str) -> String {
        let cli = Cli::try_parse_from(["fleet-breaker", command]).expect("parses");
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(default_filter(
                &cli.command,
            )))
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "fleet_breaker::breaker::store_health", "entering degraded mode");
            tracing::info!(target: "fleet_breaker::breaker::store_health", "leaving degraded mode");
            tracing::info!(target: "fleet_breaker::breaker::observe", "circuit transition");
        });
        let bytes = lines
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn the_demo_logs_entering_and_leaving_degraded_mode_but_not_transitions() {
        let demo = logged("demo");
        assert!(demo.contains("entering degraded mode"), "{demo}");
        assert!(demo.contains("leaving degraded mode"), "{demo}");
        assert!(!demo.contains("circuit transition"), "{demo}");
        let serve = logged("serve");
        assert!(serve.contains("leaving degraded mode"), "{serve}");
        assert!(serve.contains("circuit transition"), "{serve}");
    }
}
