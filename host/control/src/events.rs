//! `GET /v1/purges/{id}/events`: the status document as Server-Sent Events, one `progress` event
//! whenever it changes, ending after the event that says `done`.
//!
//! Progress is computed from watermarks on demand: the stream re-reads it when the queue server
//! records an edge's progress (at most every [`MIN_GAP`], so a burst of acks costs one read), and
//! every [`POLL`] in any case (decommissions, another control node's writes); it sends only
//! changes. SSE keep-alive comments hold idle connections open.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use edgepurge_api::BatchStatus;
use edgepurge_control_store::{ApiToken, ControlStore};
use futures_util::stream;

use crate::authenticated::Authenticated;
use crate::progress::batch_status;
use crate::state::AppState;
use crate::Error;

/// How often an open stream re-reads the batch's progress when nothing woke it.
pub const POLL: Duration = Duration::from_millis(500);
/// The least time between two reads of one stream.
pub const MIN_GAP: Duration = Duration::from_millis(20);

/// Where one stream is.
struct Cursor<S> {
    state: Arc<AppState<S>>,
    token: ApiToken,
    id: String,
    last: Option<BatchStatus>,
    progressed: tokio::sync::watch::Receiver<u64>,
    read_at: tokio::time::Instant,
    first: bool,
    finished: bool,
}

/// `GET /v1/purges/{id}/events`.
pub async fn events<S: ControlStore + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Path(id): Path<String>,
    Authenticated(token): Authenticated,
) -> Result<Response, Error> {
    // Answer 404 (not an empty stream) for a batch the token cannot see.
    batch_status(&state.store, &token, &id).await?;
    let progressed = state.queue.subscribe_progressed();
    let read_at = tokio::time::Instant::now();
    let cursor = Cursor { state, token, id, last: None, progressed, read_at, first: true, finished: false };
    let events = stream::unfold(cursor, |mut c| async move {
        if c.finished {
            return None;
        }
        loop {
            if !std::mem::take(&mut c.first) {
                tokio::select! {
                    _ = c.progressed.changed() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
                tokio::time::sleep_until(c.read_at + MIN_GAP).await;
            }
            c.read_at = tokio::time::Instant::now();
            let event = match batch_status(&c.state.store, &c.token, &c.id).await {
                Ok(doc) if c.last.as_ref() != Some(&doc) => {
                    c.finished = doc.state.is_done();
                    let event = Event::default().event("progress").json_data(&doc);
                    c.last = Some(doc);
                    match event {
                        Ok(event) => event,
                        Err(e) => Event::default().event("error").data(e.to_string()),
                    }
                }
                Ok(_) => continue,
                Err(e) => {
                    c.finished = true;
                    Event::default().event("error").data(e.to_string())
                }
            };
            return Some((Ok::<_, Infallible>(event), c));
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}
