//! `GET /v1/purges/{id}/events`: the status document as Server-Sent Events, one `progress` event
//! whenever it changes, ending after the event that says `done`.
//!
//! Progress is computed from watermarks on demand, so the stream polls the store (every
//! [`POLL`]) and sends only changes; SSE keep-alive comments hold idle connections open.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use edgepurge_control_store::{ApiToken, ControlStore};
use futures_util::stream;

use crate::api::{authenticate, progress_view, AppState};
use crate::Error;

/// How often an open stream re-reads the batch's progress.
pub const POLL: Duration = Duration::from_millis(500);

/// Where one stream is.
struct Cursor<S> {
    state: Arc<AppState<S>>,
    token: ApiToken,
    id: String,
    last: Option<serde_json::Value>,
    first: bool,
    finished: bool,
}

/// `GET /v1/purges/{id}/events`.
pub async fn events<S: ControlStore + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let token = authenticate(&state.store, &headers).await?;
    // Answer 404 (not an empty stream) for a batch the token cannot see.
    progress_view(&state.store, &token, &id).await?;
    let cursor = Cursor { state, token, id, last: None, first: true, finished: false };
    let events = stream::unfold(cursor, |mut c| async move {
        if c.finished {
            return None;
        }
        loop {
            if !std::mem::take(&mut c.first) {
                tokio::time::sleep(POLL).await;
            }
            let event = match progress_view(&c.state.store, &c.token, &c.id).await {
                Ok((view, done)) if c.last.as_ref() != Some(&view) => {
                    c.finished = done;
                    let event = Event::default().event("progress").json_data(&view);
                    c.last = Some(view);
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
