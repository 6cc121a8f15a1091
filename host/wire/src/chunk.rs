//! Chunks: a run of consecutive tasks of one queue, encoded once with postcard when control
//! appends them and sent as the same bytes to every edge (issue 15).
//!
//! An encoded chunk is exactly postcard's encoding of `Vec<WireTask>` (a varint count, then each
//! task). A `Tasks` frame body is postcard's encoding of `ControlFrame::Tasks { queue,
//! first_offset, tasks }`: the variant index, the queue, the first offset (three varints), then
//! that same `Vec<WireTask>`. So a frame is spliced from a stored chunk by writing a few header
//! bytes in front ([`tasks_frame`]), and an edge keeps the tail of the body it received as the
//! chunk ([`tasks_payload`]): no task is re-encoded on the way, and an edge of any build decodes
//! the spliced frame as the ordinary `Tasks` frame it always was (no protocol change).

use bytes::Bytes;

use crate::frame::{check_run, Offset, QueueId, WireTask};
use crate::{Result, WireError, LEN_PREFIX};

/// `ControlFrame::Tasks`'s variant index (the frame order is fixed forever, see `frame`).
const TASKS_VARIANT: u32 = 1;

/// The stable task id the wire carries: the queue in the top 16 bits, the offset below ((queue,
/// offset) is unique and never reused on a control node, so no id of its own is stored).
pub fn task_id(queue: QueueId, offset: Offset) -> u64 {
    (u64::from(queue) << 48) | (offset & ((1 << 48) - 1))
}

/// A [`WireTask`] borrowing its strings, for encoding a chunk without copying each task's
/// target, host and tenant into a `WireTask` first: the same fields in the same order, so postcard
/// writes the same bytes (a `&str` and a `String` encode alike).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct WireTaskRef<'a> {
    /// See [`WireTask::id`].
    pub id: u64,
    /// See [`WireTask::kind`].
    pub kind: crate::frame::WireTaskKind,
    /// See [`WireTask::target`].
    pub target: &'a str,
    /// See [`WireTask::soft`].
    pub soft: bool,
    /// See [`WireTask::size_bytes`].
    pub size_bytes: u64,
    /// See [`WireTask::host`].
    pub host: &'a str,
    /// See [`WireTask::tenant`].
    pub tenant: &'a str,
}

/// Encodes borrowed tasks as a chunk, byte for byte what [`encode_tasks`] writes for the owned
/// tasks, appended to `out` (reusing its allocation).
pub fn encode_task_refs_into(tasks: &[WireTaskRef<'_>], out: Vec<u8>) -> Result<Vec<u8>> {
    postcard::to_extend(tasks, out).map_err(|source| WireError::Encode { frame: "Tasks", source })
}

/// Encodes `tasks` as a chunk: postcard's `Vec<WireTask>`.
pub fn encode_tasks(tasks: &[WireTask]) -> Result<Vec<u8>> {
    postcard::to_stdvec(tasks).map_err(|source| WireError::Encode { frame: "Tasks", source })
}

/// Appends `tasks` as one chunk to `out` (reusing its allocation; see [`encode_tasks`]).
pub fn encode_tasks_into(tasks: &[WireTask], out: Vec<u8>) -> Result<Vec<u8>> {
    postcard::to_extend(tasks, out).map_err(|source| WireError::Encode { frame: "Tasks", source })
}

/// Decodes a chunk made by [`encode_tasks`] (or taken by [`tasks_payload`]), refusing trailing
/// bytes.
pub fn decode_tasks(chunk: &[u8]) -> Result<Vec<WireTask>> {
    let malformed = |source| WireError::Malformed { len: chunk.len(), source };
    let (tasks, rest) = postcard::take_from_bytes::<Vec<WireTask>>(chunk).map_err(malformed)?;
    if !rest.is_empty() {
        return Err(malformed(postcard::Error::DeserializeBadEncoding));
    }
    Ok(tasks)
}

/// How many tasks a chunk holds, read from its leading count alone (nothing is decoded).
pub fn chunk_len(chunk: &[u8]) -> Result<u64> {
    postcard::take_from_bytes::<u64>(chunk)
        .map(|(n, _)| n)
        .map_err(|source| WireError::Malformed { len: chunk.len(), source })
}

/// The complete `Tasks` frame (length prefix included, ready to write to a stream) for a chunk of
/// `queue` whose first task has `first_offset`: what `encode(&ControlFrame::Tasks { .. })` would
/// write for the decoded tasks, byte for byte, without decoding or re-encoding them.
pub fn tasks_frame(queue: QueueId, first_offset: Offset, chunk: &[u8]) -> Result<Bytes> {
    check_run(first_offset, chunk_len(chunk)?).map_err(|reason| WireError::Invalid { frame: "Tasks", reason })?;
    let encode_err = |source| WireError::Encode { frame: "Tasks", source };
    let mut buf = Vec::with_capacity(LEN_PREFIX + 16 + chunk.len());
    buf.extend_from_slice(&[0u8; LEN_PREFIX]);
    let mut buf = postcard::to_extend(&(TASKS_VARIANT, queue, first_offset), buf).map_err(encode_err)?;
    buf.extend_from_slice(chunk);
    let body = buf.len() - LEN_PREFIX;
    let len = u32::try_from(body).map_err(|_| WireError::FrameTooLarge { len: body as u64, max: u32::MAX as usize })?;
    buf[..LEN_PREFIX].copy_from_slice(&len.to_be_bytes());
    Ok(Bytes::from(buf))
}

/// One `Tasks` frame (length prefix included) of consecutive chunks of `queue`, the first
/// starting at `first_offset`: the chunks' tasks concatenated under one count, still without
/// decoding or re-encoding a task (a postcard sequence is its count followed by its items). For
/// many small chunks in a row (single-URL purges arriving together), so an edge stores them in
/// one write.
pub fn joined_tasks_frame(queue: QueueId, first_offset: Offset, chunks: &[&[u8]]) -> Result<Bytes> {
    let mut parts = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        parts.push(
            postcard::take_from_bytes::<u64>(chunk)
                .map_err(|source| WireError::Malformed { len: chunk.len(), source })?,
        );
    }
    let count: u64 = parts.iter().map(|(n, _)| n).sum();
    let mut joined = postcard::to_stdvec(&count).map_err(|source| WireError::Encode { frame: "Tasks", source })?;
    for (_, items) in parts {
        joined.extend_from_slice(items);
    }
    tasks_frame(queue, first_offset, &joined)
}

/// For a `Tasks` frame body (without its length prefix), the queue, the first offset and the
/// encoded chunk that follows them; `None` for any other frame or a body too short to say.
pub fn tasks_payload(body: &[u8]) -> Option<(QueueId, Offset, &[u8])> {
    let (variant, rest) = postcard::take_from_bytes::<u32>(body).ok()?;
    if variant != TASKS_VARIANT {
        return None;
    }
    let ((queue, first_offset), rest) = postcard::take_from_bytes::<(QueueId, Offset)>(rest).ok()?;
    Some((queue, first_offset, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::WireTaskKind;
    use crate::{encode, ControlFrame, Decoder};

    #[test]
    fn borrowed_tasks_encode_as_the_owned_ones() {
        let owned: Vec<WireTask> = (1..=5).map(task).collect();
        let refs: Vec<WireTaskRef<'_>> = owned
            .iter()
            .map(|t| WireTaskRef {
                id: t.id,
                kind: t.kind,
                target: &t.target,
                soft: t.soft,
                size_bytes: t.size_bytes,
                host: &t.host,
                tenant: &t.tenant,
            })
            .collect();
        assert_eq!(encode_task_refs_into(&refs, Vec::new()).unwrap(), encode_tasks(&owned).unwrap());
    }

    fn task(i: u64) -> WireTask {
        WireTask {
            id: i,
            kind: WireTaskKind::Url,
            target: format!("https://a.example/{i}"),
            soft: i.is_multiple_of(2),
            size_bytes: 40 + i,
            host: "a.example".into(),
            tenant: "acme".into(),
        }
    }

    #[test]
    fn a_spliced_frame_is_byte_for_byte_the_encoded_frame() {
        for (queue, first, n) in [(0, 1, 1), (3, 300, 1000), (u32::MAX, u64::MAX - 9, 10), (7, 128, 0)] {
            let tasks: Vec<_> = (0..n).map(task).collect();
            let chunk = encode_tasks(&tasks).unwrap();
            let spliced = tasks_frame(queue, first, &chunk).unwrap();
            let frame = ControlFrame::Tasks { queue, first_offset: first, tasks: tasks.clone() };
            assert_eq!(spliced, encode(&frame).unwrap(), "queue {queue}, first {first}, {n} tasks");
            let mut decoder = Decoder::<ControlFrame>::new();
            decoder.push(&spliced);
            assert_eq!(decoder.next_frame().unwrap(), Some(frame));
            assert_eq!(chunk_len(&chunk).unwrap(), n);
        }
    }

    #[test]
    fn the_payload_of_a_received_body_is_the_chunk() {
        let tasks: Vec<_> = (0..5).map(task).collect();
        let chunk = encode_tasks(&tasks).unwrap();
        let frame = tasks_frame(2, 41, &chunk).unwrap();
        let (queue, first, payload) = tasks_payload(&frame[LEN_PREFIX..]).unwrap();
        assert_eq!((queue, first, payload), (2, 41, chunk.as_slice()));
        assert_eq!(decode_tasks(payload).unwrap(), tasks);
        let hb = encode(&ControlFrame::Heartbeat { at_ms: 5 }).unwrap();
        assert_eq!(tasks_payload(&hb[LEN_PREFIX..]), None);
        assert_eq!(tasks_payload(&[]), None);
    }

    #[test]
    fn joined_chunks_are_the_frame_of_all_their_tasks() {
        let tasks: Vec<_> = (0..7).map(task).collect();
        let parts = [
            encode_tasks(&tasks[..1]).unwrap(),
            encode_tasks(&tasks[1..5]).unwrap(),
            encode_tasks(&tasks[5..]).unwrap(),
        ];
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        let joined = joined_tasks_frame(4, 10, &refs).unwrap();
        assert_eq!(joined, encode(&ControlFrame::Tasks { queue: 4, first_offset: 10, tasks }).unwrap());
    }

    #[test]
    fn task_ids_are_unique_per_queue_and_offset() {
        assert_eq!(task_id(0, 1), 1);
        assert_ne!(task_id(1, 1), task_id(0, 1));
        assert_eq!(task_id(3, 7) >> 48, 3);
        assert_eq!(task_id(3, 7) & 0xffff_ffff_ffff, 7);
    }

    #[test]
    fn bad_chunks_are_refused() {
        let mut chunk = encode_tasks(&[task(1)]).unwrap();
        chunk.push(0);
        assert!(matches!(decode_tasks(&chunk), Err(WireError::Malformed { .. })));
        assert!(matches!(decode_tasks(&chunk[..chunk.len() - 4]), Err(WireError::Malformed { .. })));
        assert!(matches!(tasks_frame(0, 0, &[0]), Err(WireError::Invalid { .. })));
        let reused = encode_tasks_into(&[task(1)], Vec::with_capacity(64)).unwrap();
        assert_eq!(reused, encode_tasks(&[task(1)]).unwrap());
    }
}
