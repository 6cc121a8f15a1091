//! The queue logs' shared tail (issue 15): the newest chunks of each queue in memory, each read
//! from the store once and turned into its `Tasks` frame once, then sent as the same bytes
//! (`Bytes` clones, no copy) by every edge's stream.
//!
//! Streams that keep up read from here; an edge that fell behind the tail reads the store (and
//! what it reads there is not kept: the tail only grows at its end). The tail is bounded per
//! queue ([`TAIL_BYTES`]), dropping its oldest chunks first.
//!
//! Reading past the tail's end holds that queue's lock across the store read, so when many
//! streams wake for the same append one of them reads the new chunks and the others find them
//! in memory: a chunk is read once whatever the number of edges.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use edgepurge_control_store::{Chunk, Error as StoreError, QueueStore};
use edgepurge_wire::{Offset, QueueId};

/// Frame bytes kept per queue (32 MiB: ~450,000 typical URL tasks, far more than the spread
/// between the fastest and the slowest connected edge during a bulk purge).
pub const TAIL_BYTES: usize = 32 << 20;

/// One chunk as every stream sends it.
#[derive(Debug, PartialEq, Eq)]
pub struct TailChunk {
    /// Its queue.
    pub queue: QueueId,
    /// The offset of its first task.
    pub first: Offset,
    /// The offset of its last task.
    pub last: Offset,
    /// Sum of its tasks' sizes (what flow control counts).
    pub bytes: u64,
    /// The complete `Tasks` frame, length prefix included.
    pub frame: Bytes,
    /// Where the encoded chunk starts in `frame` (after the prefix and the frame's header).
    chunk_at: usize,
}

impl TailChunk {
    /// The frame of a stored chunk (spliced, not re-encoded: `edgepurge_wire::tasks_frame`).
    pub fn of(chunk: &Chunk) -> Result<Self, StoreError> {
        let frame = edgepurge_wire::tasks_frame(chunk.queue, chunk.first, &chunk.encoded)
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let chunk_at = frame.len() - chunk.encoded.len();
        Ok(TailChunk { queue: chunk.queue, first: chunk.first, last: chunk.last, bytes: chunk.bytes, frame, chunk_at })
    }

    /// The encoded tasks (postcard `Vec<WireTask>`), as stored.
    pub fn encoded(&self) -> &[u8] {
        &self.frame[self.chunk_at..]
    }

    /// How many tasks it holds.
    pub fn tasks(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// The shared tail of every queue.
#[derive(Debug, Default)]
pub struct Tail {
    queues: Mutex<HashMap<QueueId, Arc<tokio::sync::Mutex<QueueTail>>>>,
}

/// One queue's tail: consecutive chunks, oldest first.
#[derive(Debug, Default)]
struct QueueTail {
    chunks: VecDeque<Arc<TailChunk>>,
    frame_bytes: usize,
}

impl QueueTail {
    /// The chunks holding `from` and after, up to `max_tasks` tasks; `None` when `from` is not
    /// in the tail.
    fn get(&self, from: Offset, max_tasks: usize) -> Option<Vec<Arc<TailChunk>>> {
        let front = self.chunks.front()?;
        let back = self.chunks.back()?;
        if from < front.first || from > back.last {
            return None;
        }
        let start = self.chunks.partition_point(|c| c.last < from);
        let mut out = Vec::new();
        let mut tasks = 0u64;
        for chunk in self.chunks.range(start..) {
            if tasks >= max_tasks as u64 {
                break;
            }
            tasks += chunk.last - from.max(chunk.first) + 1;
            out.push(Arc::clone(chunk));
        }
        Some(out)
    }

    /// Appends chunks read from the store past the tail's end (starting the tail afresh when
    /// they do not continue it), then drops the oldest beyond the budget.
    fn extend(&mut self, chunks: &[Arc<TailChunk>]) {
        let Some(first) = chunks.first() else { return };
        if self.chunks.back().is_some_and(|back| back.last + 1 != first.first) {
            self.chunks.clear();
            self.frame_bytes = 0;
        }
        for chunk in chunks {
            self.frame_bytes += chunk.frame.len();
            self.chunks.push_back(Arc::clone(chunk));
        }
        while self.frame_bytes > TAIL_BYTES && self.chunks.len() > 1 {
            let old = self.chunks.pop_front().expect("more than one");
            self.frame_bytes -= old.frame.len();
        }
    }
}

impl Tail {
    fn queue(&self, queue: QueueId) -> Arc<tokio::sync::Mutex<QueueTail>> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(queues.entry(queue).or_default())
    }

    /// The chunks of `queue` holding offsets from `from`, up to about `max_tasks` tasks (whole
    /// chunks, so the first may start below `from`): from memory when the tail holds `from`,
    /// else from `store` (`Error::Trimmed` as `QueueStore::read_chunks` says).
    pub async fn read<S: QueueStore>(
        &self,
        store: &S,
        queue: QueueId,
        from: Offset,
        max_tasks: usize,
    ) -> Result<Vec<Arc<TailChunk>>, StoreError> {
        let tail = self.queue(queue);
        let mut guard = tail.lock().await;
        if let Some(hit) = guard.get(from, max_tasks) {
            return Ok(hit);
        }
        let below = guard.chunks.front().is_some_and(|front| from < front.first);
        if below {
            // A stream behind the tail: read the store without holding up the others.
            drop(guard);
            return read_store(store, queue, from, max_tasks).await;
        }
        let chunks = read_store(store, queue, from, max_tasks).await?;
        guard.extend(&chunks);
        Ok(chunks)
    }
}

/// Chunks of `queue` from `from` read from `store`, as frames, without keeping them in a tail
/// (what a stream below the tail or below the trim point reads).
pub async fn read_store<S: QueueStore>(
    store: &S,
    queue: QueueId,
    from: Offset,
    max_tasks: usize,
) -> Result<Vec<Arc<TailChunk>>, StoreError> {
    let chunks = store.read_chunks(queue, from, max_tasks).await?;
    chunks.iter().map(|c| TailChunk::of(c).map(Arc::new)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(first: Offset, last: Offset, frame_len: usize) -> Arc<TailChunk> {
        Arc::new(TailChunk { queue: 0, first, last, bytes: 10, frame: Bytes::from(vec![0; frame_len]), chunk_at: 0 })
    }

    #[test]
    fn reads_inside_the_tail_return_whole_chunks_from_the_one_holding_from() {
        let mut t = QueueTail::default();
        t.extend(&[chunk(1, 10, 5), chunk(11, 20, 5), chunk(21, 30, 5)]);
        let firsts = |v: Vec<Arc<TailChunk>>| v.iter().map(|c| c.first).collect::<Vec<_>>();
        assert_eq!(firsts(t.get(15, 1000).unwrap()), vec![11, 21]);
        assert_eq!(firsts(t.get(1, 10).unwrap()), vec![1]);
        assert_eq!(firsts(t.get(5, 7).unwrap()), vec![1, 11], "6 tasks from 5 in the first, then more");
        assert!(t.get(31, 10).is_none(), "past the end");
        assert!(t.get(0, 10).is_none(), "below the start");
    }

    #[test]
    fn the_tail_is_bounded_and_restarts_on_a_gap() {
        let mut t = QueueTail::default();
        let big = TAIL_BYTES / 2 + 1;
        t.extend(&[chunk(1, 1, big), chunk(2, 2, big), chunk(3, 3, big)]);
        assert_eq!(t.chunks.len(), 1, "only the newest fits");
        assert_eq!(t.chunks[0].first, 3);
        t.extend(&[chunk(9, 9, 1)]);
        assert_eq!((t.chunks.len(), t.chunks[0].first, t.frame_bytes), (1, 9, 1));
    }
}
