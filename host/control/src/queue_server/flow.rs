//! Flow control of one queue stream: control never has more task bytes sent beyond the edge's
//! `received` watermarks than the edge's last reported `buffer_free` (and at most
//! [`MAX_WINDOW`]), so a full edge buffer stops the stream until the edge acknowledges.
//!
//! `buffer_free` is measured by the edge *after* everything at or below its `received`
//! watermarks is stored, so what may still be in flight is exactly the tasks sent above them.

use std::collections::{BTreeMap, VecDeque};

use edgepurge_wire::{Offset, QueueId};

/// The most task bytes in flight on one stream whatever the edge reports (8 MiB).
pub const MAX_WINDOW: u64 = 8 << 20;

/// The flow-control window of one stream.
#[derive(Debug, Clone, Default)]
pub struct Flow {
    buffer_free: u64,
    /// Per queue, the edge's `received` watermark.
    received: BTreeMap<QueueId, Offset>,
    /// Per queue, the sizes of tasks sent above `received`, in offset order.
    in_flight: BTreeMap<QueueId, VecDeque<(Offset, u64)>>,
    in_flight_bytes: u64,
}

impl Flow {
    /// A window from an edge's `Hello`: `resume` holds next offsets, so `received` is one below.
    pub fn new(resume: &[(QueueId, Offset)], buffer_free: u64) -> Self {
        let received = resume.iter().map(|&(q, next)| (q, next.saturating_sub(1))).collect();
        Flow { buffer_free, received, ..Flow::default() }
    }

    /// The current window: the edge's free space, capped at [`MAX_WINDOW`].
    pub fn window(&self) -> u64 {
        self.buffer_free.min(MAX_WINDOW)
    }

    /// Task bytes sent and not yet reported received.
    pub fn in_flight(&self) -> u64 {
        self.in_flight_bytes
    }

    /// Bytes that may still be sent now.
    pub fn room(&self) -> u64 {
        self.window().saturating_sub(self.in_flight_bytes)
    }

    /// Whether a task of `size` bytes may be sent now.
    pub fn fits(&self, size: u64) -> bool {
        size <= self.room()
    }

    /// Records a task sent. Tasks at or below the edge's `received` watermark (a resend after a
    /// reconnect) occupy nothing: the edge ignores them.
    pub fn sent(&mut self, queue: QueueId, offset: Offset, size: u64) {
        if offset <= self.received.get(&queue).copied().unwrap_or(0) {
            return;
        }
        self.in_flight.entry(queue).or_default().push_back((offset, size));
        self.in_flight_bytes += size;
    }

    /// Applies an `Ack`: watermarks only go up; tasks at or below them leave the window; the
    /// edge's free space replaces the last report.
    pub fn ack(&mut self, received: &[(QueueId, Offset)], buffer_free: u64) {
        for &(queue, mark) in received {
            let current = self.received.entry(queue).or_insert(0);
            *current = (*current).max(mark);
            let mark = *current;
            if let Some(sent) = self.in_flight.get_mut(&queue) {
                while let Some(&(offset, size)) = sent.front() {
                    if offset > mark {
                        break;
                    }
                    sent.pop_front();
                    self.in_flight_bytes -= size;
                }
            }
        }
        self.buffer_free = buffer_free;
    }

    /// Forgets what was in flight on `queue` below `first` (the queue was trimmed there: those
    /// tasks are gone and the edge resumes at `first`).
    pub fn trimmed(&mut self, queue: QueueId, first: Offset) {
        if let Some(sent) = self.in_flight.get_mut(&queue) {
            while let Some(&(offset, size)) = sent.front() {
                if offset >= first {
                    break;
                }
                sent.pop_front();
                self.in_flight_bytes -= size;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_free_space_capped() {
        assert_eq!(Flow::new(&[], 1000).window(), 1000);
        assert_eq!(Flow::new(&[], u64::MAX).window(), MAX_WINDOW);
        assert_eq!(Flow::new(&[], 0).room(), 0);
    }

    #[test]
    fn sending_fills_the_window_and_acks_empty_it() {
        let mut f = Flow::new(&[], 100);
        assert!(f.fits(100) && !f.fits(101));
        f.sent(0, 1, 40);
        f.sent(0, 2, 40);
        f.sent(1, 1, 10);
        assert_eq!((f.in_flight(), f.room()), (90, 10));
        assert!(!f.fits(11));
        // The edge stored queue 0 up to 1 and has 60 bytes free afterwards.
        f.ack(&[(0, 1)], 60);
        assert_eq!((f.in_flight(), f.room()), (50, 10));
        f.ack(&[(0, 2), (1, 1)], 20);
        assert_eq!((f.in_flight(), f.room()), (0, 20));
    }

    #[test]
    fn watermarks_never_go_back_and_resends_are_free() {
        let mut f = Flow::new(&[(0, 5)], 100);
        f.sent(0, 3, 50); // the edge holds it already (resume said 5)
        assert_eq!(f.in_flight(), 0);
        f.sent(0, 5, 30);
        f.sent(0, 6, 30);
        f.ack(&[(0, 5)], 100);
        f.ack(&[(0, 2)], 100); // late and lower: ignored
        assert_eq!(f.in_flight(), 30);
        f.sent(0, 4, 30);
        assert_eq!(f.in_flight(), 30, "below the watermark");
    }

    #[test]
    fn a_full_buffer_stops_everything_until_acked() {
        let mut f = Flow::new(&[], 64);
        f.sent(2, 1, 64);
        assert_eq!(f.room(), 0);
        // Received but the buffer is still full (nothing applied yet): still no room.
        f.ack(&[(2, 1)], 0);
        assert_eq!((f.in_flight(), f.room()), (0, 0));
        f.ack(&[], 64);
        assert_eq!(f.room(), 64);
    }

    #[test]
    fn trimming_forgets_what_was_below() {
        let mut f = Flow::new(&[], 1000);
        f.sent(0, 1, 10);
        f.sent(0, 2, 10);
        f.sent(0, 3, 10);
        f.trimmed(0, 3);
        assert_eq!(f.in_flight(), 10);
    }
}
