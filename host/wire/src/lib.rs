//! The queue transport's wire protocol (DESIGN decision 5): versioned frames between the control
//! role and its edges, encoded with serde + postcard and length-delimited.
//!
//! This crate is frames only — no sockets, no TLS — so both roles and their tests share one
//! definition of the bytes:
//!
//! - [`ControlFrame`] (control → edge) and [`EdgeFrame`] (edge → control), in [`frame`];
//! - [`encode`] and the incremental [`Decoder`] (also a `tokio_util::codec` pair, [`FrameCodec`]),
//!   in [`codec`];
//! - [`PROTOCOL_VERSION`] and [`check_version`], which every `Hello` goes through.
//!
//! The README lists the frames and the framing.
//!
//! ```
//! use edgepurge_wire::{encode, ControlFrame, Decoder, PROTOCOL_VERSION};
//!
//! let hello = ControlFrame::Hello { protocol_version: PROTOCOL_VERSION, control_id: "control-1".into() };
//! let bytes = encode(&hello)?;
//! let mut decoder = Decoder::<ControlFrame>::new();
//! // Bytes arrive in arbitrary pieces; frames come out whole.
//! decoder.push(&bytes[..3]);
//! assert_eq!(decoder.next_frame()?, None);
//! decoder.push(&bytes[3..]);
//! let frame = decoder.next_frame()?.expect("complete");
//! assert_eq!(frame.expect_hello()?, "control-1");
//! # Ok::<(), edgepurge_wire::WireError>(())
//! ```

pub mod chunk;
pub mod codec;
pub mod frame;

use serde::{Deserialize, Serialize};

pub use chunk::{
    chunk_len, decode_tasks, encode_task_refs_into, encode_tasks, encode_tasks_into, joined_tasks_frame, task_id,
    tasks_frame, tasks_payload, WireTaskRef,
};
pub use codec::{decode_body, encode, Decoder, Frame, FrameCodec, DEFAULT_MAX_FRAME, LEN_PREFIX};
pub use frame::{fingerprint, ControlFrame, EdgeFrame, LogId, Offset, QueueId, TaskFailure, WireTask, WireTaskKind};

/// A protocol version. Peers with the same `major` understand each other; `minor` only adds
/// (new trailing variants), so it is informational.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProtocolVersion {
    /// Incompatible changes bump this; a different major is refused at `Hello`.
    pub major: u16,
    /// Compatible additions bump this.
    pub minor: u16,
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The version this build speaks. 1.1 added `EdgeFrame::Positions` and `ControlFrame::Log`
/// (log identity and offset checks), each sent only to a peer whose `Hello` names minor ≥ 1.
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion { major: 1, minor: 1 };

/// The first minor version with `Positions` / `Log`.
pub const MINOR_LOG_IDENTITY: u16 = 1;

impl ProtocolVersion {
    /// Whether a peer speaking this version understands `Positions` / `Log` (1.1 and later).
    pub fn has_log_identity(self) -> bool {
        self.major == PROTOCOL_VERSION.major && self.minor >= MINOR_LOG_IDENTITY
    }
}

/// Everything that can go wrong reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A length prefix announced more than the receiver accepts; nothing was allocated for it.
    #[error(
        "frame of {len} bytes exceeds the limit of {max} bytes; the peer is misbehaving or the \
         limit (`max_frame`) is too small for its largest policy module or task run"
    )]
    FrameTooLarge {
        /// The announced body length.
        len: u64,
        /// The receiver's limit.
        max: usize,
    },
    /// A body was read in full but is not a valid frame of the expected direction.
    #[error(
        "malformed frame ({len} bytes): {source}; the peer speaks another protocol or the stream \
         is corrupt — close the connection and reconnect"
    )]
    Malformed {
        /// The body length.
        len: usize,
        /// What postcard found.
        #[source]
        source: postcard::Error,
    },
    /// A frame decoded but breaks an invariant of the protocol (see `validate` on the frames).
    #[error("invalid {frame} frame: {reason}; the peer has a bug — close the connection")]
    Invalid {
        /// The frame's name.
        frame: &'static str,
        /// Which invariant.
        reason: &'static str,
    },
    /// A frame could not be serialised (only possible if a type stops being postcard-friendly).
    #[error("cannot encode {frame} frame: {source}; this is a bug in edgepurge-wire")]
    Encode {
        /// The frame's name.
        frame: &'static str,
        /// What postcard said.
        #[source]
        source: postcard::Error,
    },
    /// The stream ended inside a frame.
    #[error(
        "stream ended inside a frame ({buffered} bytes buffered); the peer closed mid-frame — \
         reconnect and resume from the acknowledged offsets"
    )]
    Truncated {
        /// Bytes of the unfinished frame.
        buffered: usize,
    },
    /// The peer's `Hello` named an incompatible protocol version.
    #[error(
        "peer speaks protocol {theirs}, this build speaks {ours}: major versions differ; upgrade \
         the older of control and edge"
    )]
    VersionMismatch {
        /// The peer's version.
        theirs: ProtocolVersion,
        /// Ours.
        ours: ProtocolVersion,
    },
    /// The first frame on a stream was not `Hello`.
    #[error("expected Hello as the first frame, got {got}; the peer is not following the protocol")]
    ExpectedHello {
        /// The frame that came instead.
        got: &'static str,
    },
    /// The transport failed under the `tokio_util` codec.
    #[error("transport error: {0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand for this crate's results.
pub type Result<T, E = WireError> = std::result::Result<T, E>;

/// Accepts a peer's `Hello` version when its major equals ours; otherwise refuses, naming both.
pub fn check_version(theirs: ProtocolVersion) -> Result<()> {
    check_version_against(theirs, PROTOCOL_VERSION)
}

/// [`check_version`] against an explicit version of ours (for tests and for a future build that
/// speaks two majors during a migration).
pub fn check_version_against(theirs: ProtocolVersion, ours: ProtocolVersion) -> Result<()> {
    if theirs.major == ours.major {
        Ok(())
    } else {
        Err(WireError::VersionMismatch { theirs, ours })
    }
}

impl ControlFrame {
    /// The version a `Hello` names; `None` for every other frame.
    pub fn hello_version(&self) -> Option<ProtocolVersion> {
        match self {
            Self::Hello { protocol_version, .. } => Some(*protocol_version),
            _ => None,
        }
    }

    /// Checks that this is the stream's opening `Hello` with a compatible version, and returns
    /// the control node's id.
    pub fn expect_hello(&self) -> Result<&str> {
        match self {
            Self::Hello { protocol_version, control_id } => {
                check_version(*protocol_version)?;
                Ok(control_id)
            }
            other => Err(WireError::ExpectedHello { got: other.name() }),
        }
    }
}

impl EdgeFrame {
    /// Checks that this is the stream's opening `Hello` with a compatible version, and returns
    /// the edge's resume points and free buffer space.
    pub fn expect_hello(&self) -> Result<(&[(QueueId, Offset)], u64)> {
        match self {
            Self::Hello { protocol_version, resume, buffer_free } => {
                check_version(*protocol_version)?;
                Ok((resume, *buffer_free))
            }
            other => Err(WireError::ExpectedHello { got: other.name() }),
        }
    }
}

impl From<WireError> for std::io::Error {
    fn from(err: WireError) -> Self {
        match err {
            WireError::Io(io) => io,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other),
        }
    }
}
