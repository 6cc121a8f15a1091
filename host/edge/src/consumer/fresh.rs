//! Chunks handed from the receive path to the appliers in memory: a `Tasks` frame is decoded
//! once when it arrives (to check it, size it and fingerprint it), written to the receive buffer,
//! and its decoded tasks offered here, so an applier that keeps up applies them without reading
//! the row back and decoding it a second time (a third of an edge's CPU per task in issue 15's
//! profile went to decoding and allocating).
//!
//! Only a shortcut: the receive buffer stays the truth. An applier takes from here only the
//! chunk that starts exactly at its next offset, from the buffer it is using; anything else
//! (after a restart, a trim, a reset, a replaced buffer, an applier that fell behind the bound)
//! is read from the buffer as before.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use edgepurge_wire::{Offset, QueueId};

use crate::receive_buffer::PendingChunk;

/// At most this many tasks are held per (node, queue); beyond, chunks are left to the buffer.
const MAX_HELD: u64 = 16_000;

/// One (node key, queue)'s held chunks, each with the id of the buffer it was written to.
type Held = VecDeque<(u64, PendingChunk)>;

/// The chunks held, per (node key, queue).
#[derive(Default)]
pub(super) struct Fresh {
    held: Mutex<HashMap<(String, QueueId), Held>>,
}

impl Fresh {
    /// Offers `chunk`, just written to buffer `buffer_id`.
    pub fn offer(&self, key: &str, queue: QueueId, buffer_id: u64, chunk: PendingChunk) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let chunks = held.entry((key.to_owned(), queue)).or_default();
        if chunks.back().is_some_and(|(id, last)| *id != buffer_id || last.last + 1 != chunk.from) {
            // Not a continuation (a resend, a reset): the older ones are for the buffer to give.
            chunks.clear();
        }
        if chunks.iter().map(|(_, c)| c.len()).sum::<u64>() + chunk.len() > MAX_HELD {
            return;
        }
        chunks.push_back((buffer_id, chunk));
    }

    /// The held chunks of (`key`, `queue`) from buffer `buffer_id` that continue from `next`
    /// without a gap, until they cover `max` offsets; drops those below `next`.
    pub fn take(&self, key: &str, queue: QueueId, next: Offset, buffer_id: u64, max: u64) -> Vec<PendingChunk> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let Some(chunks) = held.get_mut(&(key.to_owned(), queue)) else { return Vec::new() };
        while chunks.front().is_some_and(|(id, c)| *id != buffer_id || c.last < next) {
            chunks.pop_front();
        }
        let (mut out, mut expected, mut count) = (Vec::new(), next, 0);
        while count < max && chunks.front().is_some_and(|(_, c)| c.from == expected) {
            let (_, chunk) = chunks.pop_front().expect("checked");
            expected = chunk.last + 1;
            count += chunk.len();
            out.push(chunk);
        }
        out
    }

    /// Drops everything held for `key` (its positions were reset or a queue trimmed).
    pub fn forget(&self, key: &str) {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).retain(|(k, _), _| k != key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receive_buffer::Pending;

    fn chunk(from: Offset, last: Offset) -> PendingChunk {
        PendingChunk { from, last, tasks: Pending::Tasks(Vec::new()) }
    }

    fn spans(chunks: &[PendingChunk]) -> Vec<(Offset, Offset)> {
        chunks.iter().map(|c| (c.from, c.last)).collect()
    }

    #[test]
    fn only_what_continues_the_appliers_offset_from_its_buffer_is_taken() {
        let fresh = Fresh::default();
        fresh.offer("n", 0, 1, chunk(1, 10));
        fresh.offer("n", 0, 1, chunk(11, 20));
        fresh.offer("n", 0, 1, chunk(21, 30));
        assert!(fresh.take("n", 0, 5, 1, 100).is_empty(), "not at a chunk start: read the buffer");
        assert_eq!(spans(&fresh.take("n", 0, 11, 1, 15)), vec![(11, 20), (21, 30)]);
        fresh.offer("n", 0, 1, chunk(31, 40));
        assert!(fresh.take("n", 0, 31, 2, 100).is_empty(), "another buffer's chunks are not taken");
        fresh.offer("n", 1, 1, chunk(1, 5));
        fresh.offer("n", 1, 1, chunk(9, 12));
        assert_eq!(spans(&fresh.take("n", 1, 9, 1, 100)), vec![(9, 12)], "a gap dropped the older one");
        fresh.offer("n", 1, 1, chunk(13, 14));
        fresh.forget("n");
        assert!(fresh.take("n", 1, 13, 1, 100).is_empty());
    }

    #[test]
    fn at_most_the_bound_is_held() {
        let fresh = Fresh::default();
        let step = MAX_HELD / 2;
        fresh.offer("n", 0, 1, chunk(1, step));
        fresh.offer("n", 0, 1, chunk(step + 1, 2 * step));
        fresh.offer("n", 0, 1, chunk(2 * step + 1, 3 * step));
        assert_eq!(fresh.take("n", 0, 1, 1, u64::MAX).len(), 2);
    }
}
