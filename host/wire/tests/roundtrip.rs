//! Property tests: every frame survives encode → decode, in any chunking of the byte stream,
//! and `WireTask` ↔ `Task` loses nothing.

mod support;

use edgepurge_sdk::Task;
use edgepurge_wire::{encode, ControlFrame, Decoder, EdgeFrame, Frame, WireTask, LEN_PREFIX};
use proptest::prelude::*;
use support::{control_frame, edge_frame, sdk_task, wire_task};

/// Decodes all of `bytes`, pushed in pieces cut at `cuts` (positions, reduced modulo the length).
fn decode_chunked<F: Frame>(bytes: &[u8], cuts: &[usize]) -> Vec<F> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    let mut decoder = Decoder::<F>::new();
    let mut out = Vec::new();
    for pair in points.windows(2) {
        decoder.push(&bytes[pair[0]..pair[1]]);
        while let Some(frame) = decoder.next_frame().expect("valid stream decodes") {
            out.push(frame);
        }
    }
    decoder.finish().expect("nothing left over");
    out
}

fn concat<F: Frame>(frames: &[F]) -> Vec<u8> {
    frames.iter().flat_map(|f| encode(f).expect("encodes").to_vec()).collect()
}

proptest! {
    #[test]
    fn control_frames_round_trip(frame in control_frame()) {
        let bytes = encode(&frame).unwrap();
        prop_assert_eq!(u32::from_be_bytes(bytes[..LEN_PREFIX].try_into().unwrap()) as usize, bytes.len() - LEN_PREFIX);
        prop_assert_eq!(decode_chunked::<ControlFrame>(&bytes, &[]), vec![frame]);
    }

    #[test]
    fn edge_frames_round_trip(frame in edge_frame()) {
        let bytes = encode(&frame).unwrap();
        prop_assert_eq!(decode_chunked::<EdgeFrame>(&bytes, &[]), vec![frame]);
    }

    #[test]
    fn any_chunking_of_control_frames_decodes_the_same(
        frames in prop::collection::vec(control_frame(), 0..8),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        prop_assert_eq!(decode_chunked::<ControlFrame>(&concat(&frames), &cuts), frames);
    }

    #[test]
    fn any_chunking_of_edge_frames_decodes_the_same(
        frames in prop::collection::vec(edge_frame(), 0..8),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        prop_assert_eq!(decode_chunked::<EdgeFrame>(&concat(&frames), &cuts), frames);
    }

    #[test]
    fn byte_at_a_time_decodes_the_same(frames in prop::collection::vec(control_frame(), 1..4)) {
        let bytes = concat(&frames);
        let cuts: Vec<usize> = (0..bytes.len()).collect();
        prop_assert_eq!(decode_chunked::<ControlFrame>(&bytes, &cuts), frames);
    }

    #[test]
    fn task_to_wire_and_back(task in sdk_task()) {
        let wire = WireTask::from(&task);
        prop_assert_eq!(Task::from(wire), task);
    }

    #[test]
    fn wire_to_task_and_back(wire in wire_task()) {
        prop_assert_eq!(WireTask::from(Task::from(wire.clone())), wire);
    }
}
