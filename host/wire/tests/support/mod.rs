//! Proptest strategies for every frame, shared by the test binaries.

#![allow(dead_code)] // Each test binary uses a different subset.

use edgepurge_sdk::{Task, TaskKind};
use edgepurge_wire::{ControlFrame, EdgeFrame, ProtocolVersion, TaskFailure, WireTask, WireTaskKind};
use proptest::prelude::*;

/// Any task kind.
pub fn kind() -> impl Strategy<Value = WireTaskKind> {
    prop_oneof![
        Just(WireTaskKind::Url),
        Just(WireTaskKind::Prefix),
        Just(WireTaskKind::Tag),
        Just(WireTaskKind::Host),
        Just(WireTaskKind::Everything),
        Just(WireTaskKind::Warm),
    ]
}

/// Any SDK task kind.
pub fn sdk_kind() -> impl Strategy<Value = TaskKind> {
    kind().prop_map(TaskKind::from)
}

/// Any wire task, with arbitrary (including non-ASCII) strings.
pub fn wire_task() -> impl Strategy<Value = WireTask> {
    (any::<u64>(), kind(), ".{0,40}", any::<bool>(), any::<u64>(), ".{0,12}", ".{0,8}").prop_map(
        |(id, kind, target, soft, size_bytes, host, tenant)| WireTask {
            id,
            kind,
            target,
            soft,
            size_bytes,
            host,
            tenant,
        },
    )
}

/// Any SDK task.
pub fn sdk_task() -> impl Strategy<Value = Task> {
    (any::<u64>(), sdk_kind(), ".{0,40}", any::<bool>(), any::<u64>(), ".{0,12}", ".{0,8}").prop_map(
        |(id, kind, target, soft, size_bytes, host, tenant)| Task { id, kind, target, soft, size_bytes, tenant, host },
    )
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    (any::<u16>(), any::<u16>()).prop_map(|(major, minor)| ProtocolVersion { major, minor })
}

/// Watermarks: any offset, 0 included ("nothing yet").
fn positions() -> impl Strategy<Value = Vec<(u32, u64)>> {
    prop::collection::vec((any::<u32>(), any::<u64>()), 0..6)
}

/// Resume points: next offsets, so from 1.
fn resume_points() -> impl Strategy<Value = Vec<(u32, u64)>> {
    prop::collection::vec((any::<u32>(), 1..=u64::MAX), 0..6)
}

/// Any control → edge frame.
pub fn control_frame() -> impl Strategy<Value = ControlFrame> {
    prop_oneof![
        (version(), ".{0,20}")
            .prop_map(|(protocol_version, control_id)| ControlFrame::Hello { protocol_version, control_id }),
        (any::<u32>(), 1..=u64::MAX - 20, prop::collection::vec(wire_task(), 0..20))
            .prop_map(|(queue, first_offset, tasks)| ControlFrame::Tasks { queue, first_offset, tasks }),
        (any::<u32>(), 1..=u64::MAX)
            .prop_map(|(queue, first_retained)| ControlFrame::Trimmed { queue, first_retained }),
        (".{0,10}", ".{0,6}", "[0-9a-f]{64}", prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(name, version, sha256, bytes)| ControlFrame::Policy { name, version, sha256, bytes }),
        any::<u64>().prop_map(|at_ms| ControlFrame::Heartbeat { at_ms }),
        ("[0-9a-f]{0,32}", proptest::option::of(".{0,30}"), resume_points())
            .prop_map(|(log_id, reset, start)| ControlFrame::Log { log_id, reset, start }),
    ]
}

/// Any edge → control frame.
pub fn edge_frame() -> impl Strategy<Value = EdgeFrame> {
    let failure = (any::<u32>(), any::<u64>(), ".{0,30}").prop_map(|(queue, offset, reason)| TaskFailure {
        queue,
        offset,
        reason,
    });
    prop_oneof![
        (version(), resume_points(), any::<u64>()).prop_map(|(protocol_version, resume, buffer_free)| {
            EdgeFrame::Hello { protocol_version, resume, buffer_free }
        }),
        (positions(), positions(), prop::collection::vec(failure, 0..5), any::<u64>()).prop_map(
            |(received, applied, failures, buffer_free)| EdgeFrame::Ack { received, applied, failures, buffer_free }
        ),
        (".{0,10}", ".{0,6}", "[0-9a-f]{64}", proptest::option::of(".{0,30}"))
            .prop_map(|(name, version, sha256, error)| EdgeFrame::PolicyLoaded { name, version, sha256, error }),
        any::<u64>().prop_map(|at_ms| EdgeFrame::Heartbeat { at_ms }),
        (
            proptest::option::of("[0-9a-f]{0,32}"),
            prop::collection::vec((any::<u32>(), any::<u64>(), any::<u64>()), 0..5),
            prop::collection::vec((any::<u64>(), ".{0,30}"), 0..3)
        )
            .prop_map(|(log_id, last, notices)| EdgeFrame::Positions { log_id, last, notices }),
    ]
}
