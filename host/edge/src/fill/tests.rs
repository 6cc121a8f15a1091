//! Unit tests of collapsed fills (paused tokio time wherever a timeout matters).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::sync::Barrier;
use tokio::time::Instant;

use super::*;

fn config() -> FillConfig {
    FillConfig {
        max_waiters: 1000,
        wait_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(2),
        max_buffered_bytes: 1 << 20,
        max_lag_bytes: 1 << 20,
    }
}

fn head() -> FillHead {
    let mut headers = HeaderMap::new();
    headers.insert("x-origin", HeaderValue::from_static("yes"));
    FillHead { status: StatusCode::OK, headers }
}

fn leader(join: Join<&'static str>) -> FillLeader<&'static str> {
    match join {
        Join::Leader(leader) => leader,
        other => panic!("expected a leader, got {other:?}"),
    }
}

fn follower(join: Join<&'static str>) -> FillFollower {
    match join {
        Join::Follower(follower) => follower,
        other => panic!("expected a follower, got {other:?}"),
    }
}

/// Reads head and whole body.
pub(super) async fn read_all(mut f: FillFollower) -> Result<(FillHead, Vec<u8>), FillError> {
    let head = f.head().await?;
    let mut body = Vec::new();
    while let Some(chunk) = f.next_chunk().await {
        body.extend_from_slice(&chunk?);
    }
    Ok((head, body))
}

enum Role {
    Leader,
    Follower(Result<(FillHead, Vec<u8>), FillError>),
    Busy(usize),
}

/// 100 concurrent joins for one key; the leader publishes once everyone has joined.
async fn hundred_joins(config: FillConfig) -> (FillMap<&'static str>, Vec<Role>, Vec<u8>) {
    let map = FillMap::new(config);
    let barrier = Arc::new(Barrier::new(100));
    let chunks: Vec<Bytes> = (0..50u8).map(|i| Bytes::from(vec![i; 1 + i as usize])).collect();
    let expected: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (map, barrier, chunks) = (map.clone(), Arc::clone(&barrier), chunks.clone());
            tokio::spawn(async move {
                let join = map.join("/k");
                barrier.wait().await;
                match join {
                    Join::Leader(leader) => {
                        leader.publish_head(head());
                        for chunk in chunks {
                            leader.publish_chunk(chunk);
                            tokio::task::yield_now().await;
                        }
                        leader.finish();
                        Role::Leader
                    }
                    Join::Follower(f) => Role::Follower(read_all(f).await),
                    Join::Busy { waiters } => Role::Busy(waiters),
                }
            })
        })
        .collect();
    let mut roles = Vec::new();
    for task in tasks {
        roles.push(tokio::time::timeout(Duration::from_secs(10), task).await.expect("no hang").unwrap());
    }
    (map, roles, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_joins_make_one_leader_and_every_follower_gets_the_bytes() {
    let (map, roles, expected) = hundred_joins(config()).await;
    assert_eq!(roles.iter().filter(|r| matches!(r, Role::Leader)).count(), 1);
    let followers: Vec<_> = roles
        .into_iter()
        .filter_map(|r| match r {
            Role::Follower(result) => Some(result.expect("follower got the response")),
            _ => None,
        })
        .collect();
    assert_eq!(followers.len(), 99);
    for (h, body) in followers {
        assert_eq!(h, head());
        assert_eq!(body, expected);
    }
    let stats = map.stats();
    assert_eq!((stats.fills_started, stats.followers_joined, stats.busy), (1, 99, 0));
    assert_eq!(map.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_joins_with_the_default_threshold_answer_busy() {
    let (map, roles, expected) = hundred_joins(FillConfig { max_waiters: 10, ..config() }).await;
    let mut counts = (0, 0, 0);
    for role in roles {
        match role {
            Role::Leader => counts.0 += 1,
            Role::Follower(result) => {
                assert_eq!(result.unwrap().1, expected);
                counts.1 += 1;
            }
            Role::Busy(waiters) => {
                assert_eq!(waiters, 10);
                counts.2 += 1;
            }
        }
    }
    assert_eq!(counts, (1, 10, 89));
    assert_eq!(map.stats().busy, 89);
}

#[tokio::test(start_paused = true)]
async fn a_follower_joining_mid_stream_gets_the_body_from_the_first_byte() {
    let map = FillMap::new(config());
    let leader = leader(map.join("/k"));
    let early = tokio::spawn(read_all(follower(map.join("/k"))));
    leader.publish_head(head());
    leader.publish_chunk(Bytes::from_static(b"one "));
    leader.publish_chunk(Bytes::from_static(b"two "));
    tokio::task::yield_now().await;
    let mut late = follower(map.join("/k"));
    assert_eq!(map.waiters(&"/k"), 2);
    assert_eq!(late.head().await.unwrap(), head());
    assert_eq!(late.next_chunk().await.unwrap().unwrap(), "one ");
    leader.publish_chunk(Bytes::from_static(b"three"));
    leader.finish();
    let rest: Vec<_> = late.into_stream().map(Result::unwrap).collect().await;
    assert_eq!(rest, ["two ", "three"]);
    assert_eq!(early.await.unwrap().unwrap().1, b"one two three");
}

#[tokio::test(start_paused = true)]
async fn followers_stream_chunks_before_the_fill_completes() {
    let map = FillMap::new(config());
    let leader = leader(map.join("/k"));
    let mut f = follower(map.join("/k"));
    leader.publish_head(head());
    leader.publish_chunk(Bytes::from_static(b"first"));
    assert_eq!(f.next_chunk().await.unwrap().unwrap(), "first");
    assert_eq!(map.in_flight(), 1);
    drop(leader);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_leader_wakes_every_follower_with_leader_gone_at_once() {
    let map = FillMap::new(config());
    let leader = leader(map.join("/k"));
    let waiting: Vec<_> = (0..5).map(|_| tokio::spawn(read_all(follower(map.join("/k"))))).collect();
    let mut streaming = follower(map.join("/k"));
    leader.publish_head(head());
    leader.publish_chunk(Bytes::from_static(b"part"));
    assert_eq!(streaming.next_chunk().await.unwrap().unwrap(), "part");
    let start = Instant::now();
    drop(leader);
    for task in waiting {
        assert_eq!(task.await.unwrap().unwrap_err(), FillError::LeaderGone);
    }
    assert_eq!(streaming.next_chunk().await, Some(Err(FillError::LeaderGone)));
    assert_eq!(streaming.next_chunk().await, None);
    assert_eq!(start.elapsed(), Duration::ZERO, "no timeout was needed");
    assert_eq!((map.in_flight(), map.stats().leader_failures), (0, 1));
    assert!(matches!(map.join("/k"), Join::Leader(_)));
}

#[tokio::test(start_paused = true)]
async fn a_failed_fill_gives_every_follower_the_error() {
    let map = FillMap::new(config());
    let leader = leader(map.join("/k"));
    let waiting: Vec<_> = (0..3).map(|_| tokio::spawn(read_all(follower(map.join("/k"))))).collect();
    tokio::task::yield_now().await;
    leader.fail(FillError::OriginFailed("connection refused".into()));
    for task in waiting {
        let error = task.await.unwrap().unwrap_err();
        assert_eq!(error, FillError::OriginFailed("connection refused".into()));
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
    }
    assert_eq!(map.waiters(&"/k"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_silent_leader_times_followers_out_and_is_replaced() {
    let map = FillMap::new(config());
    let stuck = leader(map.join("/k"));
    let start = Instant::now();
    let mut f = follower(map.join("/k"));
    assert_eq!(f.head().await.unwrap_err(), FillError::Timeout);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(FillError::Timeout.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!((map.waiters(&"/k"), map.stats().follower_timeouts), (0, 1));
    // The stalled fill is abandoned: the next request leads, and the old leader cannot remove it.
    let fresh = leader(map.join("/k"));
    stuck.fail(FillError::LeaderGone);
    assert_eq!((map.in_flight(), map.stats().leader_failures), (1, 1), "abandoning counts once");
    let mut g = follower(map.join("/k"));
    fresh.publish_head(head());
    assert_eq!(g.head().await.unwrap(), head());
    // Idle between chunks: timed out after idle_timeout.
    let start = Instant::now();
    assert_eq!(g.next_chunk().await, Some(Err(FillError::Timeout)));
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    fresh.finish();
}

#[tokio::test(start_paused = true)]
async fn after_finish_the_next_join_starts_a_new_fill() {
    let map = FillMap::new(config());
    let first = leader(map.join("/k"));
    let f = follower(map.join("/k"));
    first.publish_head(head());
    first.publish_chunk(Bytes::from_static(b"body"));
    first.finish();
    assert_eq!(map.in_flight(), 0);
    let second = leader(map.join("/k"));
    assert_eq!(read_all(f).await.unwrap().1, b"body", "an earlier follower still reads the rest");
    drop(second);
    assert_eq!(map.stats().fills_started, 2);
}

#[tokio::test(start_paused = true)]
async fn busy_at_the_threshold_and_free_again_as_followers_leave() {
    let map = FillMap::new(FillConfig { max_waiters: 2, ..config() });
    let lead = leader(map.join("/k"));
    let a = follower(map.join("/k"));
    let mut b = follower(map.join("/k"));
    assert!(matches!(map.join("/k"), Join::Busy { waiters: 2 }));
    assert!(matches!(map.join("/other"), Join::Leader(_)), "other keys are unaffected");
    drop(a);
    assert_eq!(map.waiters(&"/k"), 1);
    let _c = follower(map.join("/k"));
    assert!(matches!(map.join("/k"), Join::Busy { .. }));
    lead.publish_head(head());
    assert_eq!(b.head().await.unwrap(), head());
    drop(b);
    assert_eq!(map.waiters(&"/k"), 1);
    let mut d = follower(map.join("/k"));
    assert_eq!(d.next_chunk().await, Some(Err(FillError::Timeout)), "d leaves on its idle timeout");
    assert_eq!(map.waiters(&"/k"), 1);
    // The leader has now been silent for idle_timeout: the fill counts as stalled, a new one starts.
    assert!(matches!(map.join("/k"), Join::Leader(_)));
    assert_eq!(map.stats().busy, 2);
}

#[tokio::test(start_paused = true)]
async fn late_joiners_past_the_replay_buffer_are_told_at_once() {
    let map = FillMap::new(FillConfig { max_buffered_bytes: 8, ..config() });
    let lead = leader(map.join("/k"));
    lead.publish_head(head());
    lead.publish_chunk(Bytes::from_static(b"12345678"));
    let on_the_limit = follower(map.join("/k"));
    lead.publish_chunk(Bytes::from_static(b"9"));
    let mut late = follower(map.join("/k"));
    assert_eq!(late.head().await.unwrap_err(), FillError::TooLateToJoin);
    assert!(FillError::TooLateToJoin.is_retryable());
    assert_eq!(map.waiters(&"/k"), 1);
    lead.finish();
    assert_eq!(read_all(on_the_limit).await.unwrap().1, b"123456789");
    assert_eq!(map.stats().too_late, 1);
}

#[tokio::test(start_paused = true)]
async fn a_follower_too_far_behind_is_dropped_and_a_fast_one_is_not() {
    let map = FillMap::new(FillConfig { max_buffered_bytes: 4, max_lag_bytes: 8, ..config() });
    let lead = leader(map.join("/k"));
    let mut slow = follower(map.join("/k"));
    let mut fast = follower(map.join("/k"));
    lead.publish_head(head());
    let mut fast_body = Vec::new();
    for i in 0..5u8 {
        lead.publish_chunk(Bytes::from(vec![i; 4]));
        fast_body.extend_from_slice(&fast.next_chunk().await.unwrap().unwrap());
    }
    assert_eq!(slow.head().await.unwrap(), head());
    assert_eq!(slow.next_chunk().await, Some(Err(FillError::Lagged)));
    assert_eq!(map.waiters(&"/k"), 1);
    lead.finish();
    assert_eq!(fast.next_chunk().await, None);
    assert_eq!(fast_body, [[0u8; 4], [1; 4], [2; 4], [3; 4], [4; 4]].concat());
}

#[test]
fn error_statuses() {
    assert_eq!(FillError::LeaderGone.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(FillError::Lagged.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(FillError::TooLateToJoin.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!FillError::OriginFailed("x".into()).is_retryable());
    assert_eq!(FillConfig::default().max_waiters, 10);
}

#[tokio::test(start_paused = true)]
async fn the_chunk_completing_the_content_length_waits_for_the_fill_to_end() {
    let map = FillMap::new(config());
    let leader = leader(map.join("/k"));
    let mut f = follower(map.join("/k"));
    let mut h = head();
    h.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("6"));
    leader.publish_head(h);
    leader.publish_chunk(Bytes::from_static(b"abc"));
    assert_eq!(f.next_chunk().await, Some(Ok(Bytes::from_static(b"abc"))));
    leader.publish_chunk(Bytes::from_static(b"def"));
    // The last bytes would tell a client its body is complete: not before the leader finished
    // (stored the object). A call given up meanwhile loses nothing.
    assert!(tokio::time::timeout(Duration::from_millis(500), f.next_chunk()).await.is_err());
    leader.finish();
    assert_eq!(f.next_chunk().await, Some(Ok(Bytes::from_static(b"def"))));
    assert_eq!(f.next_chunk().await, None);

    // A fill that fails after the last bytes: the follower gets the error, not a complete body.
    let leader = super::tests::leader(map.join("/j"));
    let mut f = follower(map.join("/j"));
    let mut h = head();
    h.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("3"));
    leader.publish_head(h);
    leader.publish_chunk(Bytes::from_static(b"abc"));
    leader.fail(FillError::OriginFailed("trailing garbage".into()));
    assert_eq!(f.next_chunk().await, Some(Err(FillError::OriginFailed("trailing garbage".into()))));
    assert_eq!(f.next_chunk().await, None);
}
