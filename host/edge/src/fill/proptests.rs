//! Random interleavings of join / publish / finish / fail / drop / time passing: no follower
//! hangs, and a follower that completes got exactly what its leader published.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use proptest::prelude::*;
use tokio::task::JoinHandle;

use super::tests::read_all;
use super::*;

#[derive(Debug, Clone)]
enum Op {
    Join,
    Head,
    Chunk(usize),
    Finish,
    Fail,
    DropLeader,
    Yield,
    Sleep(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Join),
        2 => Just(Op::Head),
        5 => (1usize..8).prop_map(Op::Chunk),
        1 => Just(Op::Finish),
        1 => Just(Op::Fail),
        1 => Just(Op::DropLeader),
        4 => Just(Op::Yield),
        1 => (0u64..1500).prop_map(Op::Sleep),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Open,
    Finished,
    Failed,
    Dropped,
    Abandoned,
}

/// What the test knows about one fill.
struct Record {
    status: Option<StatusCode>,
    bytes: Vec<u8>,
    outcome: Outcome,
    /// Time passed while the fill was open (timeouts become legitimate).
    slept: bool,
}

struct Joined {
    fill: usize,
    too_late: bool,
    task: JoinHandle<Result<(FillHead, Vec<u8>), FillError>>,
}

const MAX_BUFFERED: usize = 16;

async fn run(ops: Vec<Op>, max_lag_bytes: usize) -> Result<(), TestCaseError> {
    let config = FillConfig {
        max_waiters: 4,
        wait_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        max_buffered_bytes: MAX_BUFFERED,
        max_lag_bytes,
    };
    let map = FillMap::new(config);
    let mut records: Vec<Record> = Vec::new();
    let mut current: Option<FillLeader<u8>> = None;
    let mut abandoned = Vec::new();
    let mut joined: Vec<Joined> = Vec::new();
    let mut next_byte = 0u8;
    for op in ops {
        let open = current.is_some();
        match op {
            Op::Join => match map.join(0) {
                Join::Leader(leader) => {
                    if let Some(old) = current.take() {
                        let record = records.last_mut().unwrap();
                        prop_assert!(record.slept, "a new leader while an active fill was not stalled");
                        record.outcome = Outcome::Abandoned;
                        abandoned.push(old);
                    }
                    records.push(Record { status: None, bytes: Vec::new(), outcome: Outcome::Open, slept: false });
                    current = Some(leader);
                }
                Join::Follower(follower) => {
                    prop_assert!(open, "a follower without a fill in progress");
                    let record = records.last().unwrap();
                    let too_late = record.bytes.len() > MAX_BUFFERED;
                    let task = tokio::spawn(read_all(follower));
                    joined.push(Joined { fill: records.len() - 1, too_late, task });
                }
                Join::Busy { waiters } => {
                    prop_assert!(open);
                    prop_assert_eq!(waiters, 4);
                }
            },
            Op::Head => {
                if let Some(leader) = &current {
                    let status = StatusCode::from_u16(200 + records.len() as u16).unwrap();
                    let record = records.last_mut().unwrap();
                    leader.publish_head(FillHead { status, headers: HeaderMap::new() });
                    record.status.get_or_insert(status);
                }
            }
            Op::Chunk(len) => {
                if let Some(leader) = &current {
                    let chunk: Vec<u8> = (0..len).map(|i| next_byte.wrapping_add(i as u8)).collect();
                    next_byte = next_byte.wrapping_add(len as u8);
                    records.last_mut().unwrap().bytes.extend_from_slice(&chunk);
                    leader.publish_chunk(Bytes::from(chunk));
                }
            }
            Op::Finish | Op::Fail | Op::DropLeader => {
                if let Some(leader) = current.take() {
                    let record = records.last_mut().unwrap();
                    record.outcome = match op {
                        Op::Finish => {
                            leader.finish();
                            Outcome::Finished
                        }
                        Op::Fail => {
                            leader.fail(FillError::OriginFailed("origin".into()));
                            Outcome::Failed
                        }
                        _ => {
                            drop(leader);
                            Outcome::Dropped
                        }
                    };
                }
            }
            Op::Yield => tokio::task::yield_now().await,
            Op::Sleep(ms) => {
                if open {
                    records.last_mut().unwrap().slept = true;
                }
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
    }
    if current.take().is_some() {
        records.last_mut().unwrap().outcome = Outcome::Dropped;
    }
    drop(abandoned);
    for Joined { fill, too_late, task } in joined {
        let result = tokio::time::timeout(Duration::from_secs(3600), task).await;
        let result = result.map_err(|_| TestCaseError::fail("a follower hung"))?.unwrap();
        let record = &records[fill];
        let must_succeed = record.outcome == Outcome::Finished
            && record.status.is_some()
            && !record.slept
            && !too_late
            && max_lag_bytes >= 1024;
        prop_assert!(result.is_ok() || !must_succeed, "a follower of a clean fill failed: {:?}", result);
        match result {
            Ok((head, body)) => {
                prop_assert!(!too_late);
                prop_assert_eq!(record.outcome, Outcome::Finished);
                prop_assert_eq!(Some(head.status), record.status);
                prop_assert_eq!(&body, &record.bytes);
            }
            Err(FillError::TooLateToJoin) => prop_assert!(too_late),
            Err(FillError::OriginFailed(_)) => prop_assert_eq!(record.outcome, Outcome::Failed),
            Err(FillError::Timeout) => prop_assert!(record.slept),
            Err(FillError::Lagged) => prop_assert!(max_lag_bytes < 1024),
            Err(FillError::LeaderGone) => prop_assert!(
                record.outcome == Outcome::Dropped || (record.outcome == Outcome::Finished && record.status.is_none())
            ),
        }
    }
    prop_assert_eq!(map.in_flight(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_interleavings_never_hang_and_deliver_exact_bytes(
        ops in prop::collection::vec(op(), 0..80),
        small_lag in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        runtime.block_on(run(ops, if small_lag { 24 } else { 1 << 20 }))?;
    }
}
