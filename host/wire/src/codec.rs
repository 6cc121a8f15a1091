//! Length-delimited framing: each frame is a big-endian `u32` body length followed by the
//! postcard body.
//!
//! A length prefix rather than postcard's own COBS framing because the receiver learns the size
//! before the body arrives: it can refuse an oversized frame from four bytes, without buffering or
//! allocating it, and reserve the exact space for an accepted one.

use bytes::{Buf, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{ControlFrame, EdgeFrame, Result, WireError};

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// The default largest frame body a [`Decoder`] accepts: 16 MiB, room for a policy module
/// (~100 KB–2 MB) or a run of tens of thousands of tasks, while a corrupt prefix cannot make a
/// receiver allocate gigabytes.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// A frame type of one direction: [`ControlFrame`] or [`EdgeFrame`].
pub trait Frame: Serialize + DeserializeOwned {
    /// The variant's name, for errors and logs.
    fn frame_name(&self) -> &'static str;

    /// Checks the invariants postcard cannot express (offsets from 1, no overflow).
    fn check(&self) -> Result<(), &'static str>;
}

impl Frame for ControlFrame {
    fn frame_name(&self) -> &'static str {
        self.name()
    }

    fn check(&self) -> Result<(), &'static str> {
        self.validate()
    }
}

impl Frame for EdgeFrame {
    fn frame_name(&self) -> &'static str {
        self.name()
    }

    fn check(&self) -> Result<(), &'static str> {
        self.validate()
    }
}

/// Encodes one frame: length prefix plus postcard body.
pub fn encode<F: Frame>(frame: &F) -> Result<Bytes> {
    // Refused here too, so a sender's bug names the sender rather than surfacing at the peer.
    frame.check().map_err(|reason| WireError::Invalid { frame: frame.frame_name(), reason })?;
    let encode_err = |source| WireError::Encode { frame: frame.frame_name(), source };
    // Serialise behind a placeholder prefix and patch it, so the body is never copied.
    let mut buf = postcard::to_extend(frame, vec![0u8; LEN_PREFIX]).map_err(encode_err)?;
    let body = buf.len() - LEN_PREFIX;
    let len = u32::try_from(body).map_err(|_| WireError::FrameTooLarge { len: body as u64, max: u32::MAX as usize })?;
    buf[..LEN_PREFIX].copy_from_slice(&len.to_be_bytes());
    Ok(Bytes::from(buf))
}

/// Decodes one frame body (without its prefix), refusing trailing bytes (a body that decodes
/// with bytes left over is as corrupt as one that does not decode) and frames that break the
/// offset invariants.
pub fn decode_body<F: Frame>(body: &[u8]) -> Result<F> {
    let (frame, rest) =
        postcard::take_from_bytes::<F>(body).map_err(|source| WireError::Malformed { len: body.len(), source })?;
    if !rest.is_empty() {
        return Err(WireError::Malformed { len: body.len(), source: postcard::Error::DeserializeBadEncoding });
    }
    frame.check().map_err(|reason| WireError::Invalid { frame: frame.frame_name(), reason })?;
    Ok(frame)
}

/// An incremental decoder: feed it bytes as they arrive with [`push`](Self::push), take frames
/// with [`next_frame`](Self::next_frame).
///
/// Frames may be split across pushes and one push may carry several frames. After an error the
/// stream is unusable (framing is lost): close the connection and reconnect.
#[derive(Debug)]
pub struct Decoder<F> {
    buf: BytesMut,
    max_frame: usize,
    _frame: std::marker::PhantomData<fn() -> F>,
}

impl<F: Frame> Default for Decoder<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Frame> Decoder<F> {
    /// A decoder accepting bodies up to [`DEFAULT_MAX_FRAME`].
    pub fn new() -> Self {
        Self::with_max_frame(DEFAULT_MAX_FRAME)
    }

    /// A decoder accepting bodies up to `max_frame` bytes.
    pub fn with_max_frame(max_frame: usize) -> Self {
        Self { buf: BytesMut::new(), max_frame, _frame: std::marker::PhantomData }
    }

    /// The largest body accepted.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<F>> {
        decode_from(&mut self.buf, self.max_frame)
    }

    /// Like [`next_frame`](Self::next_frame), with the frame's body as received (without its
    /// length prefix), so a receiver can keep a `Tasks` frame's chunk as it came
    /// ([`crate::tasks_payload`]) instead of re-encoding the decoded tasks.
    pub fn next_frame_and_body(&mut self) -> Result<Option<(F, Bytes)>> {
        let Some(body) = take_body(&mut self.buf, self.max_frame)? else { return Ok(None) };
        let frame = decode_body(&body)?;
        Ok(Some((frame, body)))
    }

    /// Call at end of stream: an error if a frame was left unfinished.
    pub fn finish(&self) -> Result<()> {
        match self.buf.len() {
            0 => Ok(()),
            buffered => Err(WireError::Truncated { buffered }),
        }
    }
}

/// Takes one frame off the front of `buf`, if complete; the shared core of [`Decoder`] and
/// [`FrameCodec`].
fn decode_from<F: Frame>(buf: &mut BytesMut, max_frame: usize) -> Result<Option<F>> {
    match take_body(buf, max_frame)? {
        Some(body) => decode_body(&body).map(Some),
        None => Ok(None),
    }
}

/// Takes one complete frame body (prefix removed) off the front of `buf`, if there is one.
fn take_body(buf: &mut BytesMut, max_frame: usize) -> Result<Option<Bytes>> {
    let Some(prefix) = buf.get(..LEN_PREFIX) else { return Ok(None) };
    let len = u32::from_be_bytes(prefix.try_into().expect("slice of LEN_PREFIX bytes")) as usize;
    if len > max_frame {
        // Refused from the prefix alone: nothing of the body is buffered or reserved.
        return Err(WireError::FrameTooLarge { len: len as u64, max: max_frame });
    }
    let total = LEN_PREFIX + len;
    if buf.len() < total {
        // Reserve once for the whole frame rather than growing with every read.
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(LEN_PREFIX);
    Ok(Some(buf.split_to(len).freeze()))
}

/// A `tokio_util::codec` encoder/decoder pair: decodes `In` frames and encodes `Out` frames
/// (control uses `FrameCodec<EdgeFrame, ControlFrame>`, an edge the reverse).
#[derive(Debug)]
pub struct FrameCodec<In, Out> {
    max_frame: usize,
    _frames: std::marker::PhantomData<fn(Out) -> In>,
}

impl<In, Out> FrameCodec<In, Out> {
    /// A codec accepting bodies up to [`DEFAULT_MAX_FRAME`].
    pub fn new() -> Self {
        Self::with_max_frame(DEFAULT_MAX_FRAME)
    }

    /// A codec accepting bodies up to `max_frame` bytes.
    pub fn with_max_frame(max_frame: usize) -> Self {
        Self { max_frame, _frames: std::marker::PhantomData }
    }
}

impl<In, Out> Default for FrameCodec<In, Out> {
    fn default() -> Self {
        Self::new()
    }
}

impl<In: Frame, Out> tokio_util::codec::Decoder for FrameCodec<In, Out> {
    type Item = In;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>> {
        decode_from(src, self.max_frame)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<In>> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(WireError::Truncated { buffered: src.len() }),
        }
    }
}

impl<In, Out: Frame> tokio_util::codec::Encoder<Out> for FrameCodec<In, Out> {
    type Error = WireError;

    fn encode(&mut self, frame: Out, dst: &mut BytesMut) -> Result<()> {
        dst.extend_from_slice(&encode(&frame)?);
        Ok(())
    }
}

impl<In, Out: Frame> tokio_util::codec::Encoder<&Out> for FrameCodec<In, Out> {
    type Error = WireError;

    fn encode(&mut self, frame: &Out, dst: &mut BytesMut) -> Result<()> {
        dst.extend_from_slice(&encode(frame)?);
        Ok(())
    }
}
