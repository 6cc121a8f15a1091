//! The decoder's refusals (oversized, truncated, garbage), version checks, the `tokio_util`
//! codec, and the size of a typical `Tasks` frame.

mod support;

use bytes::BytesMut;
use edgepurge_wire::{
    check_version, check_version_against, encode, ControlFrame, Decoder, EdgeFrame, FrameCodec, ProtocolVersion,
    WireError, WireTask, WireTaskKind, LEN_PREFIX, PROTOCOL_VERSION,
};
use proptest::prelude::*;
use support::control_frame;

fn heartbeat() -> ControlFrame {
    ControlFrame::Heartbeat { at_ms: 1_700_000_000_000 }
}

#[test]
fn oversized_prefix_is_refused_from_four_bytes() {
    let mut decoder = Decoder::<ControlFrame>::with_max_frame(1024);
    decoder.push(&1025u32.to_be_bytes());
    let err = decoder.next_frame().unwrap_err();
    assert!(matches!(err, WireError::FrameTooLarge { len: 1025, max: 1024 }), "{err}");
    assert!(err.to_string().contains("1025") && err.to_string().contains("1024"), "{err}");
}

#[test]
fn default_limit_refuses_a_4_gib_prefix_without_allocating() {
    let mut decoder = Decoder::<EdgeFrame>::new();
    decoder.push(&u32::MAX.to_be_bytes());
    assert!(matches!(decoder.next_frame(), Err(WireError::FrameTooLarge { .. })));
    // Only the four prefix bytes are held; the body was never reserved.
    assert_eq!(decoder.buffered(), LEN_PREFIX);
}

#[test]
fn frame_at_exactly_the_limit_is_accepted() {
    let bytes = encode(&heartbeat()).unwrap();
    let mut decoder = Decoder::<ControlFrame>::with_max_frame(bytes.len() - LEN_PREFIX);
    decoder.push(&bytes);
    assert_eq!(decoder.next_frame().unwrap(), Some(heartbeat()));
}

#[test]
fn truncated_stream_is_reported_at_finish() {
    let bytes = encode(&heartbeat()).unwrap();
    let mut decoder = Decoder::<ControlFrame>::new();
    decoder.push(&bytes[..bytes.len() - 1]);
    assert_eq!(decoder.next_frame().unwrap(), None);
    let err = decoder.finish().unwrap_err();
    assert!(matches!(err, WireError::Truncated { buffered } if buffered == bytes.len() - 1), "{err}");
}

#[test]
fn empty_and_unknown_variant_bodies_are_malformed() {
    for body in [&[][..], &[0x7f][..], &[0xff, 0xff, 0xff][..]] {
        let mut decoder = Decoder::<ControlFrame>::new();
        decoder.push(&(body.len() as u32).to_be_bytes());
        decoder.push(body);
        let err = decoder.next_frame().unwrap_err();
        assert!(matches!(err, WireError::Malformed { .. }), "{body:?}: {err}");
    }
}

#[test]
fn trailing_bytes_inside_a_frame_are_malformed() {
    let bytes = encode(&heartbeat()).unwrap();
    let mut body = bytes[LEN_PREFIX..].to_vec();
    body.push(0);
    let mut decoder = Decoder::<ControlFrame>::new();
    decoder.push(&(body.len() as u32).to_be_bytes());
    decoder.push(&body);
    assert!(matches!(decoder.next_frame(), Err(WireError::Malformed { .. })));
}

#[test]
fn offsets_from_one_and_without_overflow_are_enforced_both_ways() {
    let task = WireTask {
        id: 1,
        kind: WireTaskKind::Everything,
        target: String::new(),
        soft: false,
        size_bytes: 0,
        host: String::new(),
        tenant: String::new(),
    };
    let bad_control = [
        ControlFrame::Tasks { queue: 0, first_offset: 0, tasks: vec![task.clone()] },
        ControlFrame::Tasks { queue: 0, first_offset: u64::MAX, tasks: vec![task.clone(), task.clone()] },
        ControlFrame::Trimmed { queue: 0, first_retained: 0 },
    ];
    for frame in bad_control {
        assert!(matches!(encode(&frame), Err(WireError::Invalid { .. })), "{frame:?}");
        // The same frame forged past `encode` is refused by the decoder.
        let body = postcard::to_stdvec(&frame).unwrap();
        let mut decoder = Decoder::<ControlFrame>::new();
        decoder.push(&(body.len() as u32).to_be_bytes());
        decoder.push(&body);
        let err = decoder.next_frame().unwrap_err();
        assert!(matches!(err, WireError::Invalid { .. }), "{frame:?}: {err}");
    }
    let bad_edge = EdgeFrame::Hello { protocol_version: PROTOCOL_VERSION, resume: vec![(1, 0)], buffer_free: 0 };
    assert!(matches!(encode(&bad_edge), Err(WireError::Invalid { frame: "Hello", .. })));
    // The last offset of a run may be u64::MAX itself.
    let last = ControlFrame::Tasks { queue: 0, first_offset: u64::MAX, tasks: vec![task] };
    encode(&last).unwrap();
    assert_eq!(last.task_offsets().unwrap().1.map(|(offset, _)| offset).collect::<Vec<_>>(), vec![u64::MAX]);
}

#[test]
fn task_offsets_number_a_run_from_first_offset() {
    let tasks: Vec<WireTask> = (0..3)
        .map(|id| WireTask {
            id,
            kind: WireTaskKind::Url,
            target: format!("http://a.com/{id}"),
            soft: false,
            size_bytes: 10,
            host: "a.com".into(),
            tenant: "t".into(),
        })
        .collect();
    let frame = ControlFrame::Tasks { queue: 7, first_offset: 41, tasks };
    let (queue, offsets) = frame.task_offsets().unwrap();
    assert_eq!(queue, 7);
    assert_eq!(offsets.map(|(offset, task)| (offset, task.id)).collect::<Vec<_>>(), vec![(41, 0), (42, 1), (43, 2)]);
    assert!(heartbeat().task_offsets().is_none());
}

proptest! {
    /// Garbage never panics and never yields more frames than could fit.
    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut decoder = Decoder::<ControlFrame>::with_max_frame(64);
        decoder.push(&bytes);
        let mut frames = 0;
        while let Ok(Some(_)) = decoder.next_frame() {
            frames += 1;
        }
        prop_assert!(frames <= bytes.len() / LEN_PREFIX);
    }

    /// Cutting a valid frame short anywhere leaves the decoder waiting, and `finish` complains.
    #[test]
    fn every_proper_prefix_is_incomplete(frame in control_frame(), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&frame).unwrap();
        let cut = cut.index(bytes.len());
        let mut decoder = Decoder::<ControlFrame>::new();
        decoder.push(&bytes[..cut]);
        prop_assert_eq!(decoder.next_frame().unwrap(), None);
        prop_assert_eq!(decoder.finish().is_err(), cut > 0);
    }
}

#[test]
fn same_major_is_accepted_other_major_refused_naming_both() {
    check_version(ProtocolVersion { major: PROTOCOL_VERSION.major, minor: PROTOCOL_VERSION.minor + 7 }).unwrap();
    let err = check_version_against(ProtocolVersion { major: 2, minor: 3 }, ProtocolVersion { major: 1, minor: 0 })
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("2.3") && msg.contains("1.0"), "{msg}");
}

#[test]
fn expect_hello_checks_version_and_kind() {
    let ours = ControlFrame::Hello { protocol_version: PROTOCOL_VERSION, control_id: "c1".into() };
    assert_eq!(ours.expect_hello().unwrap(), "c1");
    let theirs = EdgeFrame::Hello {
        protocol_version: ProtocolVersion { major: PROTOCOL_VERSION.major + 1, minor: 0 },
        resume: vec![(0, 1)],
        buffer_free: 0,
    };
    assert!(matches!(theirs.expect_hello(), Err(WireError::VersionMismatch { .. })));
    assert!(matches!(heartbeat().expect_hello(), Err(WireError::ExpectedHello { got: "Heartbeat" })));
}

#[test]
fn hello_stays_variant_zero() {
    // Any version must be able to decode the other side's greeting; see `frame`'s module docs.
    let control = encode(&ControlFrame::Hello { protocol_version: PROTOCOL_VERSION, control_id: String::new() });
    let edge = encode(&EdgeFrame::Hello { protocol_version: PROTOCOL_VERSION, resume: vec![], buffer_free: 0 });
    assert_eq!(control.unwrap()[LEN_PREFIX], 0);
    assert_eq!(edge.unwrap()[LEN_PREFIX], 0);
}

#[test]
fn tokio_codec_round_trips_and_reports_truncation() {
    use tokio_util::codec::{Decoder as _, Encoder as _};
    let mut control = FrameCodec::<EdgeFrame, ControlFrame>::new();
    let mut edge = FrameCodec::<ControlFrame, EdgeFrame>::new();
    let mut wire = BytesMut::new();
    control.encode(heartbeat(), &mut wire).unwrap();
    control.encode(&ControlFrame::Trimmed { queue: 2, first_retained: 40 }, &mut wire).unwrap();
    assert_eq!(edge.decode(&mut wire).unwrap(), Some(heartbeat()));
    assert_eq!(edge.decode(&mut wire).unwrap(), Some(ControlFrame::Trimmed { queue: 2, first_retained: 40 }));
    assert_eq!(edge.decode_eof(&mut wire).unwrap(), None);

    let ack = EdgeFrame::Heartbeat { at_ms: 1 };
    edge.encode(ack.clone(), &mut wire).unwrap();
    let full = wire.len();
    wire.truncate(full - 1);
    assert_eq!(control.decode(&mut wire).unwrap(), None);
    assert!(matches!(control.decode_eof(&mut wire), Err(WireError::Truncated { .. })));

    let mut small = FrameCodec::<ControlFrame, EdgeFrame>::with_max_frame(8);
    let mut big = BytesMut::new();
    control
        .encode(
            ControlFrame::Policy { name: "p".into(), version: "1".into(), sha256: String::new(), bytes: vec![0; 64] },
            &mut big,
        )
        .unwrap();
    assert!(matches!(small.decode(&mut big), Err(WireError::FrameTooLarge { max: 8, .. })));
}

/// The size note in the README: a typical run of 1,000 URL purges of one host.
#[test]
fn typical_thousand_task_frame_size() {
    let tasks: Vec<WireTask> = (0..1000u64)
        .map(|i| WireTask {
            id: 1_000_000 + i,
            kind: WireTaskKind::Url,
            target: format!("http://www.example.com/assets/img/product-{:05}.jpg", 10_000 + i),
            soft: false,
            size_bytes: 180,
            host: "www.example.com".into(),
            tenant: "acme".into(),
        })
        .collect();
    let target_bytes: usize = tasks.iter().map(|t| t.target.len()).sum();
    let frame = ControlFrame::Tasks { queue: 3, first_offset: 1_234_567, tasks };
    let encoded = encode(&frame).unwrap().len();
    println!(
        "1,000-task Tasks frame: {encoded} bytes ({} per task; targets alone {target_bytes} bytes)",
        encoded / 1000
    );
    // Targets dominate; the per-task overhead (varints, host, tenant) stays small.
    assert!(encoded < target_bytes + 1000 * 32, "{encoded}");
}

#[test]
fn fingerprints_tell_tasks_apart_but_not_their_positions() {
    use edgepurge_wire::fingerprint;
    let task = |id: u64, target: &str, host: &str| WireTask {
        id,
        kind: WireTaskKind::Url,
        target: target.into(),
        soft: false,
        size_bytes: 60,
        host: host.into(),
        tenant: "t".into(),
    };
    let a = task(1, "http://a.test/x", "a.test");
    // The id is the position and the tenant comes from a record that may expire: neither counts.
    assert_eq!(fingerprint(&a), fingerprint(&WireTask { id: 9, tenant: String::new(), ..a.clone() }));
    assert_ne!(fingerprint(&a), fingerprint(&task(1, "http://a.test/y", "a.test")));
    assert_ne!(fingerprint(&a), fingerprint(&WireTask { soft: true, ..a.clone() }));
    assert_ne!(fingerprint(&a), fingerprint(&WireTask { kind: WireTaskKind::Prefix, ..a.clone() }));
    // Field boundaries are part of the hash.
    assert_ne!(fingerprint(&task(1, "ab", "c")), fingerprint(&task(1, "a", "bc")));
    // Stable across builds: the value is part of the protocol.
    assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
}

#[test]
fn only_peers_of_1_1_and_later_get_log_frames() {
    assert!(PROTOCOL_VERSION.has_log_identity());
    assert!(!ProtocolVersion { major: 1, minor: 0 }.has_log_identity());
    assert!(!ProtocolVersion { major: 2, minor: 5 }.has_log_identity());
    let log = ControlFrame::Log { log_id: "x".into(), reset: None, start: vec![(0, 0)] };
    assert!(log.validate().is_err(), "a start offset of 0 is refused");
}
