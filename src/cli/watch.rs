//! `fleet-breaker watch`: transitions as they happen.

use std::time::Duration;

use futures::StreamExt;

use super::output::{out_line, transition_line};
use super::{CliError, Connection, StoreArgs, WatchArgs, shutdown_signal};

/// How long the subscription may take to come up.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Prints each transition of the fleet, one line each, until Ctrl-C (or `--duration`).
pub(super) async fn run(store: &StoreArgs, args: WatchArgs) -> Result<(), CliError> {
    let connection = Connection::redis(store).await?;
    let breaker = connection.breaker(&super::serve::instance_name("watch"), None, true, false)?;
    let mut transitions = Box::pin(breaker.subscribe());
    // Say "watching" only once the subscription is up, so that whoever
    // waits for the line misses no transition made after it.
    let subscribed = async {
        while !breaker.is_watching() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribed)
        .await
        .is_err()
    {
        return Err(CliError::new(format!(
            "could not subscribe to the fleet's transitions on {} within {}s",
            connection.description,
            SUBSCRIBE_TIMEOUT.as_secs()
        )));
    }
    eprintln!(
        "watching transitions on {} (Ctrl-C to stop)",
        connection.description
    );
    let stop = shutdown_signal(args.duration);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            next = transitions.next() => match next {
                Some(t) if args.json => out_line(&serde_json::to_string(&t)?)?,
                Some(t) => out_line(&transition_line(&t))?,
                None => return Err(CliError::new("the transition stream ended")),
            },
        }
    }
}
