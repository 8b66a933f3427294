//! `fleet-breaker watch`: transitions as they happen.

use futures::StreamExt;

use super::output::transition_line;
use super::{CliError, Connection, StoreArgs, WatchArgs, shutdown_signal};

/// Prints each transition of the fleet, one line each, until Ctrl-C (or `--duration`).
pub(super) async fn run(store: &StoreArgs, args: WatchArgs) -> Result<(), CliError> {
    let connection = Connection::redis(store).await?;
    let breaker = connection.breaker(&super::serve::instance_name("watch"), None, true)?;
    let mut transitions = Box::pin(breaker.subscribe());
    if !args.json {
        eprintln!(
            "watching transitions on {} (Ctrl-C to stop)",
            connection.description
        );
    }
    let stop = shutdown_signal(args.duration);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            next = transitions.next() => match next {
                Some(t) if args.json => println!("{}", serde_json::to_string(&t)?),
                Some(t) => println!("{}", transition_line(&t)),
                None => return Err(CliError::new("the transition stream ended")),
            },
        }
    }
}
