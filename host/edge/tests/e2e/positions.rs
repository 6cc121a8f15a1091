//! Log identity on the edge (issue 14): the edge tells a 1.1 control node which log its offsets
//! came from and which task it received last per queue, sends no Ack before the node's `Log`,
//! and when the node refuses its positions it purges everything, drops what it buffered from that
//! node and starts where the node says.

use edgepurge_wire::{fingerprint, ControlFrame, EdgeFrame};
use http::Method;

use crate::consumer::{cache, url_task, Setup};
use crate::support::{accept, FAKE_LOG_ID};

#[tokio::test]
async fn positions_name_the_log_and_the_task_received_last() {
    let mut setup = Setup::new().await;
    let edge = setup.edge("").await;
    let mut stream = setup.control.next_stream().await;
    let (_, _, first) = stream.hello_then("control-1", |resume, _| accept(FAKE_LOG_ID, resume)).await;
    assert_eq!(first, EdgeFrame::Positions { log_id: None, last: vec![], notices: vec![] }, "a new edge knows no log");
    let tasks = vec![url_task(1, "/a"), url_task(2, "/b"), url_task(3, "/c")];
    stream.send(ControlFrame::Tasks { queue: 0, first_offset: 1, tasks: tasks.clone() });
    stream.applied(0, 3).await;
    drop(stream);

    let mut again = setup.control.next_stream().await;
    let (resume, _, positions) = again.hello_then("control-1", |resume, _| accept(FAKE_LOG_ID, resume)).await;
    assert_eq!(resume, vec![(0, 4)]);
    assert_eq!(
        positions,
        EdgeFrame::Positions {
            log_id: Some(FAKE_LOG_ID.into()),
            last: vec![(0, 3, fingerprint(&tasks[2]))],
            notices: vec![]
        }
    );
    edge.shutdown().await;
}

#[tokio::test]
async fn refused_positions_purge_everything_and_restart_from_the_log_start() {
    let mut setup = Setup::new().await;
    let edge = setup.edge("").await;
    let mut stream = setup.control.next_stream().await;
    stream.hello("control-1").await;
    stream.send(ControlFrame::Tasks { queue: 0, first_offset: 1, tasks: vec![url_task(1, "/x"), url_task(2, "/y")] });
    stream.applied(0, 2).await;
    cache(&edge, "/a").await;
    drop(stream);

    // The node's database was replaced: it refuses the positions and starts the edge at 1.
    let mut again = setup.control.next_stream().await;
    again
        .hello_then("control-1", |_, _| ControlFrame::Log {
            log_id: "new-log".into(),
            reset: Some("edge edge-1 resumed with offsets of log fa4e…; the database was replaced".into()),
            start: vec![(0, 1)],
        })
        .await;
    // The first Ack after the Log reports the reset positions, nothing of the old log.
    let ack = again.ack_until(|_| true).await;
    let EdgeFrame::Ack { received, applied, .. } = ack else { unreachable!() };
    assert_eq!((received, applied), (vec![(0, 0)], vec![(0, 0)]));
    edge.get("/a").await.assert_fwd("miss");
    assert_eq!(edge.metric("edgepurge_control_positions_reset_total").await, 1);
    let (_, report) = edge.admin(Method::GET, "/control", Vec::new()).await;
    assert!(report.contains("positions reset by control") && report.contains("database was replaced"), "{report}");

    // Offset 1 of the new log is a new task, applied, and the edge now names the new log.
    cache(&edge, "/b").await;
    again.send(ControlFrame::Tasks { queue: 0, first_offset: 1, tasks: vec![url_task(1, "/b")] });
    again.applied(0, 1).await;
    edge.get("/b").await.assert_fwd("miss");
    drop(again);
    let mut third = setup.control.next_stream().await;
    let (resume, _, positions) = third.hello_then("control-1", |resume, _| accept("new-log", resume)).await;
    assert_eq!(resume, vec![(0, 2)]);
    assert!(matches!(positions, EdgeFrame::Positions { log_id: Some(ref id), .. } if id == "new-log"), "{positions:?}");
    edge.shutdown().await;
}
