//! One queue stream (`POST /v1/stream`) of one edge: `Hello` both ways, the edge's `Positions`
//! checked against this log and answered by `Log` (`positions`), the policy, then the tasks of
//! every queue from the checked offsets, pushed as the API appends more, within the flow-control
//! window; acks (never beyond what was sent) become watermarks and failure reports in the store.
//!
//! The session is one task waiting on everything at once (the edge's frames, the "appended"
//! signal, policy changes, a newer stream of the same edge, shutdown, the heartbeat and idle
//! timers, room in the response body): there is no polling interval anywhere.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edgepurge_control_store::{ControlStore, EdgeEventKind, Error as StoreError};
use edgepurge_wire::{ControlFrame, Decoder, EdgeFrame, Offset, QueueId, TaskFailure, PROTOCOL_VERSION};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

use super::flow::Flow;
use super::positions::{self, Claimed};
use super::report::ReportWriter;
use crate::now_ms;
use crate::state::QueueState;
use crate::tail::TailChunk;

/// Tasks read per queue per round: about one chunk (chunks hold up to 1,000 tasks).
const READ_TASKS: usize = 1000;

/// Most frames queued in a session's outbox before the pump waits for them to be sent.
const OUTBOX_FRAMES: usize = 8;

/// What a session needs besides the shared state.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Idle time before a heartbeat; silence for 3× this ends the stream.
    pub heartbeat: Duration,
    /// This node's id, sent in `Hello`.
    pub control_id: String,
}

/// Why a session ended (logged; the edge reconnects in every case).
#[derive(Debug)]
enum End {
    EdgeClosed,
    Replaced,
    Shutdown,
    Silent(Duration),
    Protocol(String),
    Store(StoreError),
    ResponseGone,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::EdgeClosed => f.write_str("the edge closed the stream"),
            End::Replaced => f.write_str("a newer stream of the same edge replaced it"),
            End::Shutdown => f.write_str("the control node is shutting down"),
            End::Silent(d) => write!(f, "nothing arrived for {d:?} (3 heartbeats)"),
            End::Protocol(m) => write!(f, "protocol error: {m}"),
            End::Store(e) => write!(f, "store error: {e}"),
            End::ResponseGone => f.write_str("the connection closed"),
        }
    }
}

/// The session's state besides the I/O.
struct Session<'a, S> {
    state: &'a QueueState<S>,
    edge: String,
    /// Per queue: the next offset to send.
    next: Vec<Offset>,
    /// Per queue: the offset the next append will get, as last read from the store.
    head: Vec<Offset>,
    /// Per queue: the first offset still retained, as last read from the store (below it the
    /// store answers `Trimmed`, whatever the shared tail still holds).
    retained: Vec<Offset>,
    flow: Flow,
    outbox: VecDeque<(Bytes, &'static str, u64, u64)>,
    /// Which queue `pump` starts at, rotated so no queue starves the others.
    start: usize,
    /// Whether a watermark beyond what was sent has been recorded as an event on this stream
    /// (each is counted; one event per stream is enough to explain them).
    refused: bool,
}

/// Runs one stream until it ends; frames for the edge go into `tx`.
pub async fn run<S: ControlStore + 'static>(
    state: Arc<QueueState<S>>,
    config: SessionConfig,
    edge: String,
    peer: SocketAddr,
    mut body: Incoming,
    tx: mpsc::Sender<Bytes>,
    mut shutdown: watch::Receiver<bool>,
) {
    let silent_after = config.heartbeat * 3;
    let mut decoder = Decoder::<EdgeFrame>::new();
    // The edge speaks first.
    let hello = tokio::select! {
        hello = first_frame(&mut body, &mut decoder) => hello,
        _ = tokio::time::sleep(silent_after) => Err(End::Silent(silent_after)),
        _ = super::stopped(&mut shutdown) => Err(End::Shutdown),
    };
    let (protocol, resume, buffer_free) = match hello {
        Ok(EdgeFrame::Hello { protocol_version, resume, buffer_free }) => {
            let ours =
                ControlFrame::Hello { protocol_version: PROTOCOL_VERSION, control_id: config.control_id.clone() };
            if let Err(e) = edgepurge_wire::check_version(protocol_version) {
                tracing::error!(%edge, %peer, error = %e, "queue stream refused: protocol versions differ");
                // Our Hello tells the edge which version we speak; then the stream ends.
                if let Ok(bytes) = edgepurge_wire::encode(&ours) {
                    let _ = tx.send(bytes).await;
                }
                return;
            }
            let Ok(bytes) = edgepurge_wire::encode(&ours) else { return };
            if tx.send(bytes).await.is_err() {
                return;
            }
            state.queue.metrics.frame_sent("Hello", 0, 0);
            (protocol_version, resume, buffer_free)
        }
        Ok(other) => {
            return tracing::warn!(%edge, %peer, frame = other.name(), "queue stream refused: expected Hello first")
        }
        Err(end) => return tracing::info!(%edge, %peer, reason = %end, "queue stream ended before Hello"),
    };
    let mut claimed = Claimed { resume, ..Claimed::default() };
    let mut notices = Vec::new();
    if protocol.has_log_identity() {
        // A 1.1 edge answers our Hello with its Positions before anything else.
        let positions = tokio::select! {
            frame = first_frame(&mut body, &mut decoder) => frame,
            _ = tokio::time::sleep(silent_after) => Err(End::Silent(silent_after)),
            _ = super::stopped(&mut shutdown) => Err(End::Shutdown),
        };
        match positions {
            Ok(EdgeFrame::Positions { log_id, last, notices: sent }) => {
                (claimed.log_id, claimed.last, notices) = (log_id, last, sent);
            }
            Ok(other) => {
                return tracing::warn!(%edge, %peer, frame = other.name(), "queue stream refused: expected Positions after Hello")
            }
            Err(end) => return tracing::info!(%edge, %peer, reason = %end, "queue stream ended before Positions"),
        }
    }
    let at = now_ms();
    if let Err(e) = state.store.register_edge(&edge, at).await {
        return tracing::error!(%edge, error = %e, "queue stream refused: the edge cannot be registered");
    }
    for (at_ms, message) in notices {
        tracing::warn!(%edge, notice = %message, "the edge reports");
        positions::record(&state, &edge, at_ms, EdgeEventKind::Notice, message).await;
    }
    let checked = match positions::check(&state, &edge, &claimed).await {
        Ok(checked) => checked,
        Err(e) => return tracing::error!(%edge, error = %e, "queue stream refused: cannot read the queue logs"),
    };
    if let Some((reason, message)) = &checked.reset {
        if !protocol.has_log_identity() {
            // A 1.0 edge cannot be told to reset; believing it would report purges applied that it
            // never received.
            return tracing::error!(
                %edge, %peer, %message,
                "queue stream refused: the edge's offsets are not this log's and it speaks protocol {protocol}, which \
                 cannot reset them; upgrade the edge (or wipe its state-dir) so it can resume"
            );
        }
        tracing::error!(%edge, %peer, reason, "{message}");
        state.queue.metrics.positions_reset(reason);
        positions::record(&state, &edge, at, EdgeEventKind::PositionsReset, message.clone()).await;
    }
    // What the edge holds now is the truth, whatever it reported before (a lost buffer, a reset).
    let start: Vec<(QueueId, Offset)> =
        checked.next.iter().enumerate().map(|(q, &next)| (q as QueueId, next)).collect();
    let caps = start.iter().map(|&(q, next)| (q, next.saturating_sub(1))).collect();
    if let Err(e) = state.store.lower_watermarks(&edge, caps, at).await {
        return tracing::error!(%edge, error = %e, "queue stream refused: cannot record the edge's positions");
    }
    state.queue.metrics.stream_opened();
    let registration = state.queue.register(&edge, peer, at);
    tracing::info!(%edge, %peer, resume = ?claimed.resume, ?start, buffer_free, "edge connected");

    let queues = state.store.queue_count() as usize;
    let mut session = Session {
        state: &state,
        edge: edge.clone(),
        next: checked.next.clone(),
        head: vec![1; queues],
        retained: vec![1; queues],
        flow: Flow::new(&start, buffer_free),
        outbox: VecDeque::new(),
        start: 0,
        refused: false,
    };
    if protocol.has_log_identity() {
        let reset = checked.reset.map(|(_, message)| message);
        session.push(&ControlFrame::Log { log_id: state.store.log_id().to_owned(), reset, start });
    }
    let writer = ReportWriter::spawn(state.clone(), edge.clone());
    let mut appended = state.queue.subscribe_appended();
    let mut policy = state.queue.subscribe_policy();
    let current = policy.borrow_and_update().clone();
    if let Some(p) = current {
        session.push(&p.frame());
    }
    appended.borrow_and_update();
    let mut ended = session.refresh_and_pump().await.err();

    let now = Instant::now();
    let (mut last_sent, mut last_received) = (now, now);
    while ended.is_none() {
        let heartbeat_at = last_sent + config.heartbeat;
        let silent_at = last_received + silent_after;
        tokio::select! {
            _ = registration.replaced.notified() => ended = Some(End::Replaced),
            _ = super::stopped(&mut shutdown) => ended = Some(End::Shutdown),
            _ = tx.closed() => ended = Some(End::ResponseGone),
            frame = body.frame() => {
                last_received = Instant::now();
                match frame {
                    None => ended = Some(End::EdgeClosed),
                    Some(Err(e)) => ended = Some(End::Protocol(format!("reading the stream: {e}"))),
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            decoder.push(&data);
                            ended = session.handle_frames(&mut decoder, &registration, &writer).await.err();
                        }
                    }
                }
            }
            permit = tx.reserve(), if !session.outbox.is_empty() => match permit {
                Ok(permit) => {
                    let (bytes, name, tasks, task_bytes) = session.outbox.pop_front().expect("not empty");
                    permit.send(bytes);
                    state.queue.metrics.frame_sent(name, tasks, task_bytes);
                    last_sent = Instant::now();
                    // Refill as the outbox drains, so a deep backlog streams instead of being read
                    // whole before the first byte goes out.
                    if session.outbox.len() < OUTBOX_FRAMES / 2 {
                        ended = session.pump().await.err();
                    }
                }
                Err(_) => ended = Some(End::ResponseGone),
            },
            changed = appended.changed() => {
                if changed.is_ok() {
                    appended.borrow_and_update();
                    ended = session.refresh_and_pump().await.err();
                }
            }
            changed = policy.changed() => {
                if changed.is_ok() {
                    let current = policy.borrow_and_update().clone();
                    if let Some(p) = current {
                        tracing::info!(%edge, policy = %p.name, version = %p.version, "sending the new policy");
                        session.push(&p.frame());
                    }
                }
            }
            _ = sleep_until(heartbeat_at), if session.outbox.is_empty() => {
                session.push(&ControlFrame::Heartbeat { at_ms: now_ms() });
                // Counted as sent when it leaves the outbox; until then do not queue another.
                last_sent = Instant::now();
            }
            _ = sleep_until(silent_at) => ended = Some(End::Silent(silent_after)),
        }
    }
    let end = ended.expect("the loop ends with a reason");
    writer.finish().await;
    match end {
        End::Store(_) | End::Protocol(_) | End::Silent(_) => {
            tracing::warn!(%edge, %peer, reason = %end, "queue stream ended")
        }
        _ => tracing::info!(%edge, %peer, reason = %end, "queue stream ended"),
    }
    drop(registration);
}

/// Reads until the first complete frame.
async fn first_frame(body: &mut Incoming, decoder: &mut Decoder<EdgeFrame>) -> Result<EdgeFrame, End> {
    loop {
        if let Some(frame) = decoder.next_frame().map_err(|e| End::Protocol(e.to_string()))? {
            return Ok(frame);
        }
        match body.frame().await {
            None => return Err(End::EdgeClosed),
            Some(Err(e)) => return Err(End::Protocol(format!("reading the stream: {e}"))),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    decoder.push(&data);
                }
            }
        }
    }
}

impl<S: ControlStore> Session<'_, S> {
    /// Queues a frame for the edge.
    fn push(&mut self, frame: &ControlFrame) {
        let (tasks, bytes) = match frame {
            ControlFrame::Tasks { tasks, .. } => (tasks.len() as u64, tasks.iter().map(|t| t.size_bytes).sum()),
            _ => (0, 0),
        };
        match edgepurge_wire::encode(frame) {
            Ok(encoded) => self.outbox.push_back((encoded, frame.name(), tasks, bytes)),
            Err(e) => tracing::error!(edge = %self.edge, error = %e, "cannot encode a frame; not sent"),
        }
    }

    /// Handles every complete frame in `decoder`.
    async fn handle_frames(
        &mut self,
        decoder: &mut Decoder<EdgeFrame>,
        registration: &crate::hub::Registration<'_>,
        writer: &ReportWriter,
    ) -> Result<(), End> {
        let mut acked = false;
        while let Some(frame) = decoder.next_frame().map_err(|e| End::Protocol(e.to_string()))? {
            match frame {
                EdgeFrame::Hello { .. } => return Err(End::Protocol("a second Hello on the stream".into())),
                EdgeFrame::Positions { .. } => return Err(End::Protocol("Positions after the stream started".into())),
                EdgeFrame::Heartbeat { .. } => {}
                EdgeFrame::Ack { mut received, mut applied, mut failures, buffer_free } => {
                    self.state.queue.metrics.ack();
                    self.refuse_unsent(&mut received, &mut applied, &mut failures).await;
                    self.flow.ack(&received, buffer_free);
                    registration.ack(&received, &applied, now_ms());
                    writer.add(&applied, failures);
                    acked = true;
                }
                EdgeFrame::PolicyLoaded { name, version, sha256, error } => {
                    match &error {
                        None => tracing::info!(edge = %self.edge, policy = %name, %version, "edge loaded the policy"),
                        Some(e) => {
                            tracing::warn!(edge = %self.edge, policy = %name, %version, error = %e, "edge refused the policy")
                        }
                    }
                    let policy = edgepurge_control_store::EdgePolicy { name, version, sha256, error };
                    if let Err(e) = self.state.store.set_edge_policy(&self.edge, policy, now_ms()).await {
                        tracing::warn!(edge = %self.edge, error = %e, "cannot record the edge's policy report");
                    }
                }
            }
        }
        if acked {
            // The window may have opened.
            self.pump().await?;
        }
        Ok(())
    }

    /// Drops from an Ack every offset beyond what this stream has sent (`next − 1`): control never
    /// accepts a watermark it did not issue. Each is counted and logged, the first recorded.
    async fn refuse_unsent(
        &mut self,
        received: &mut Vec<(QueueId, Offset)>,
        applied: &mut Vec<(QueueId, Offset)>,
        failures: &mut Vec<TaskFailure>,
    ) {
        let sent = |q: QueueId| self.next.get(q as usize).map(|next| next.saturating_sub(1));
        let mut refused = Vec::new();
        for (what, list) in [("received", &mut *received), ("applied", &mut *applied)] {
            list.retain(|&(q, offset)| {
                let ok = sent(q).is_some_and(|sent| offset <= sent);
                if !ok {
                    refused.push(format!("{what} {offset} on queue {q} (sent up to {})", sent(q).unwrap_or(0)));
                }
                ok
            });
        }
        failures.retain(|f| sent(f.queue).is_some_and(|sent| f.offset <= sent));
        if refused.is_empty() {
            return;
        }
        for _ in &refused {
            self.state.queue.metrics.watermark_refused();
        }
        let message = format!(
            "edge {} reported {} beyond what this control node sent it; ignored (the edge has a bug or its buffer \
             is damaged)",
            self.edge,
            refused.join(", ")
        );
        tracing::warn!(edge = %self.edge, "{message}");
        if !self.refused {
            self.refused = true;
            positions::record(self.state, &self.edge, now_ms(), EdgeEventKind::WatermarkRefused, message).await;
        }
    }

    /// Re-reads where each queue's log ends (after an append), then sends what fits.
    async fn refresh_and_pump(&mut self) -> Result<(), End> {
        for info in self.state.store.queue_info().await.map_err(End::Store)? {
            if let (Some(head), Some(retained)) =
                (self.head.get_mut(info.queue as usize), self.retained.get_mut(info.queue as usize))
            {
                (*head, *retained) = (info.next, info.first);
            }
        }
        self.pump().await
    }

    /// Sends tasks from every queue, round-robin by frame, while the window has room.
    async fn pump(&mut self) -> Result<(), End> {
        let queues = self.next.len();
        let mut blocked = vec![false; queues];
        let mut i = self.start;
        self.start = (self.start + 1) % queues.max(1);
        // One frame per queue per round, so a deep queue does not hold back the others; at most
        // OUTBOX_FRAMES queued, so the first frames leave at once and the stream never goes quiet
        // for longer than reading a few frames takes (a backlog of 200,000 tasks read in one go
        // kept a stream silent past the edge's 3-heartbeat limit, for ever).
        while blocked.iter().any(|b| !b) && self.outbox.len() < OUTBOX_FRAMES {
            let q = i % queues;
            i += 1;
            if blocked[q] {
                continue;
            }
            blocked[q] = !self.send_one(q as QueueId).await?;
        }
        Ok(())
    }

    /// Queues the next chunks of queue `q` as their shared frames (or a `Trimmed`); false when
    /// nothing more can go now. Whole chunks only: after a reconnect the first may start below
    /// `next` (the edge ignores what it holds).
    async fn send_one(&mut self, q: QueueId) -> Result<bool, End> {
        let from = self.next[q as usize];
        if from >= self.head[q as usize] || self.flow.room() == 0 {
            return Ok(false);
        }
        let read = if from < self.retained[q as usize] {
            // Below the trim point: the store's answer (Trimmed), not what memory still holds.
            crate::tail::read_store(&self.state.store, q, from, READ_TASKS).await
        } else {
            self.state.tail.read(&self.state.store, q, from, READ_TASKS).await
        };
        let chunks = match read {
            Ok(chunks) => chunks,
            Err(StoreError::Trimmed { first, .. }) => {
                tracing::warn!(edge = %self.edge, queue = q, from, first, "resume offset was trimmed; sending Trimmed");
                self.push(&ControlFrame::Trimmed { queue: q, first_retained: first });
                self.flow.trimmed(q, first);
                self.next[q as usize] = first;
                return Ok(true);
            }
            Err(e) => return Err(End::Store(e)),
        };
        let mut group: Vec<Arc<TailChunk>> = Vec::new();
        for chunk in chunks {
            if chunk.last < from {
                continue;
            }
            let fits = self.flow.fits(chunk.bytes);
            if chunk.first < from || (!fits && self.flow.in_flight() == 0) {
                // Resuming inside a chunk, or a window smaller than the chunk: the part that
                // starts at `from` and fits, re-encoded for this stream alone (rare: once per
                // reconnect, or an edge with almost no buffer).
                self.push_chunks(q, std::mem::take(&mut group));
                return self.push_part(q, &chunk);
            }
            if !fits {
                break;
            }
            let tasks: u64 = group.iter().map(|c| c.tasks()).sum();
            if tasks + chunk.tasks() > READ_TASKS as u64 {
                self.push_chunks(q, std::mem::take(&mut group));
            }
            self.flow.sent(q, chunk.last, chunk.bytes);
            self.next[q as usize] = chunk.last + 1;
            group.push(chunk);
        }
        let sent = !group.is_empty();
        self.push_chunks(q, group);
        Ok(sent)
    }

    /// Queues the tasks of `chunk` from this stream's next offset on, as many as the window
    /// takes, as a frame of their own; false when none fits.
    fn push_part(&mut self, q: QueueId, chunk: &TailChunk) -> Result<bool, End> {
        let tasks = edgepurge_wire::decode_tasks(chunk.encoded()).map_err(|e| {
            End::Store(StoreError::Backend(
                format!("chunk {}..={} of queue {q} in the store does not decode: {e}", chunk.first, chunk.last).into(),
            ))
        })?;
        let first = chunk.first;
        let start = self.next[q as usize].max(first);
        let mut part = Vec::new();
        for (offset, task) in (first..).zip(tasks) {
            if offset < start {
                continue;
            }
            if !self.flow.fits(task.size_bytes) {
                break;
            }
            self.flow.sent(q, offset, task.size_bytes);
            part.push(task);
        }
        if part.is_empty() {
            return Ok(false);
        }
        self.next[q as usize] = start + part.len() as u64;
        self.push(&ControlFrame::Tasks { queue: q, first_offset: start, tasks: part });
        Ok(true)
    }

    /// Queues consecutive chunks as one `Tasks` frame: the shared frame itself for one chunk,
    /// their tasks joined under one count for several small ones (single-URL purges that arrived
    /// together), so the edge stores them in one write.
    fn push_chunks(&mut self, q: QueueId, group: Vec<Arc<TailChunk>>) {
        let (Some(first), tasks, bytes) =
            (group.first(), group.iter().map(|c| c.tasks()).sum(), group.iter().map(|c| c.bytes).sum())
        else {
            return;
        };
        if group.len() == 1 {
            return self.outbox.push_back((first.frame.clone(), "Tasks", tasks, bytes));
        }
        let runs: Vec<&[u8]> = group.iter().map(|c| c.encoded()).collect();
        match edgepurge_wire::joined_tasks_frame(q, first.first, &runs) {
            Ok(frame) => self.outbox.push_back((frame, "Tasks", tasks, bytes)),
            Err(e) => {
                // Each chunk's own frame then: never a gap in what the edge receives.
                tracing::warn!(edge = %self.edge, error = %e, "cannot join chunks into one frame; sending them one by one");
                for c in group {
                    self.outbox.push_back((c.frame.clone(), "Tasks", c.tasks(), c.bytes));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_reasons_read_as_sentences() {
        assert_eq!(End::Silent(Duration::from_secs(15)).to_string(), "nothing arrived for 15s (3 heartbeats)");
        assert!(End::Replaced.to_string().contains("newer stream"));
    }
}
