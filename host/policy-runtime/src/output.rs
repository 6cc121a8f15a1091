//! Captured stdout/stderr of a policy: kept in memory up to a cap per call, then forwarded to
//! `tracing` (and to the optional [`LogSink`](crate::LogSink)) under the policy's name.
//!
//! Writes past the cap are counted and dropped rather than failing: a chatty policy must not be
//! killed for logging, and a hostile one that writes 100 MB costs the host only the cap.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The bytes one stream captured since the last drain, and how many were dropped.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    pub(crate) bytes: Vec<u8>,
    pub(crate) dropped: u64,
}

/// A stdout or stderr for one store, keeping at most `cap` bytes between drains.
#[derive(Clone)]
pub(crate) struct CappedOutput {
    cap: usize,
    buf: Arc<Mutex<Captured>>,
}

impl CappedOutput {
    pub(crate) fn new(cap: usize) -> Self {
        CappedOutput { cap, buf: Arc::default() }
    }

    /// Takes what was captured since the last call.
    pub(crate) fn drain(&self) -> Captured {
        std::mem::take(&mut *self.buf.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn push(&self, bytes: &[u8]) {
        let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.cap.saturating_sub(buf.bytes.len());
        let take = room.min(bytes.len());
        buf.bytes.extend_from_slice(&bytes[..take]);
        buf.dropped += (bytes.len() - take) as u64;
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always grant a full permit: bytes past the cap are dropped in `write`.
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for CappedOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_cap_and_counts_the_rest() {
        let out = CappedOutput::new(4);
        out.push(b"abc");
        out.push(b"defg");
        let c = out.drain();
        assert_eq!((c.bytes.as_slice(), c.dropped), (&b"abcd"[..], 3));
        assert!(out.drain().bytes.is_empty());
    }
}
