//! `GET /api/circuit-breaker/events`: server-sent events, one per transition.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{Stream, StreamExt};

use super::AppState;

/// How often an idle stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Each transition of every agent from now on, as an SSE event named
/// `transition` whose data is the transition's JSON (the shape of
/// [`Transition`](crate::Transition)); the stream ends when the service
/// stops ([`AppState::close_streams`]).
pub(super) async fn stream(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let transitions = state
        .router()
        .breaker()
        .subscribe()
        .take_until(state.closed());
    let events = transitions.filter_map(|transition| async move {
        match Event::default().event("transition").json_data(&transition) {
            Ok(event) => Some(Ok(event)),
            Err(error) => {
                tracing::error!(%error, "a transition could not be encoded for SSE");
                None
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
