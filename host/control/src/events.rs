//! `GET /v1/purges/{id}/events`: the status document as Server-Sent Events, one `progress` event
//! whenever it changes, ending after the event that says `done`.
//!
//! Progress is computed from watermarks and the hub's live edges on demand: the stream re-reads
//! it when the queue server records an edge's progress or an edge connects or disconnects (at
//! most every [`MIN_GAP`], so a burst of acks costs one read), and every [`POLL`] in any case
//! (decommissions, another control node's writes). It sends every change of the batch's progress
//! or of an edge's `connected`; `last_seen` alone moves with every ack of any batch, so it is
//! carried but does not make an event. SSE keep-alive comments hold idle connections open.

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
    batch_status(&state, &token, &id).await?;
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
            let event = match batch_status(&c.state, &c.token, &c.id).await {
                Ok(doc) if changed(c.last.as_ref(), &doc) => {
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

/// Whether `doc` differs from the `last` one sent in anything but the edges' `last_seen`.
fn changed(last: Option<&BatchStatus>, doc: &BatchStatus) -> bool {
    let Some(last) = last else { return true };
    let unseen = |doc: &BatchStatus| {
        let mut doc = doc.clone();
        doc.edges.iter_mut().for_each(|e| e.last_seen = None);
        doc
    };
    unseen(last) != unseen(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepurge_api::Document;

    #[test]
    fn progress_and_liveness_are_changes_last_seen_alone_is_not() {
        let doc = BatchStatus::example();
        assert!(changed(None, &doc), "the first document is always sent");
        let mut seen = doc.clone();
        seen.edges[0].last_seen = Some("2026-11-22T01:09:00.000Z".into());
        assert!(!changed(Some(&doc), &seen));
        let mut gone = doc.clone();
        gone.edges[0].connected = false;
        assert!(changed(Some(&doc), &gone), "a disconnect is sent");
        let mut applied = doc.clone();
        applied.edges[0].applied = 2;
        assert!(changed(Some(&doc), &applied));
    }
}
