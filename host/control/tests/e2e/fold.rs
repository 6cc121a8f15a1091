//! S2.3 folding through the API: a URL purged again while its earlier task is undelivered is
//! carried by that task; the 202 counts it and the records list both requests.

use edgepurge_control_store::RecordStore;
use serde_json::json;

use crate::support::{ControlTest, Running};

/// The records of `url` as `(batch, queue, offset, folded)`.
async fn records(c: &Running, token: &str, url: &str) -> Vec<(u64, u64, u64, bool)> {
    let r = c.send("GET", &format!("/v1/records?url={url}"), Some(token), &[], "").await;
    assert_eq!(r.status, 200, "{r:?}");
    r.json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let n = |k: &str| e[k].as_u64().unwrap();
            (n("batch"), n("queue"), n("offset"), e["folded"].as_bool().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_repeat_is_folded_into_the_undelivered_task_and_still_recorded() {
    let c = ControlTest::new().fold_window(60_000).start().await.unwrap();
    c.store.register_edge("edge-1", 0).await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    let first = c.purge(&t, json!({"urls": ["http://a.com/x"]})).await;
    assert_eq!((first.status, first.json["folded"].as_u64()), (202, Some(0)), "{first:?}");
    let again = c.purge(&t, json!({"urls": ["http://a.com/x", "http://a.com/y"]})).await;
    assert_eq!(again.status, 202, "{again:?}");
    assert_eq!(again.json["tasks"], 2, "the folded request is still one of the batch's tasks");
    assert_eq!(again.json["folded"], 1);
    assert_eq!(c.queued().await, 2, "x once, y once");

    let recs = records(&c, &t, "http://a.com/x").await;
    assert_eq!(recs.len(), 2, "{recs:?}");
    let (b1, q1, o1, f1) = recs[0];
    let (b2, q2, o2, f2) = recs[1];
    assert_eq!((b1, f1), (first.json["id"].as_u64().unwrap(), false));
    assert_eq!((b2, f2), (again.json["id"].as_u64().unwrap(), true));
    assert_eq!((q2, o2), (q1, o1), "the repeat points at the task that carries it");

    // The second batch is done exactly when the carrying task is applied.
    c.store.set_watermark("edge-1", q1 as u32, o1, 1).await.unwrap();
    for q in 0..4 {
        c.store.set_watermark("edge-1", q, 2, 1).await.unwrap();
    }
    let s = c.send("GET", &format!("/v1/purges/{}", again.json["id"]), Some(&t), &[], "").await;
    assert_eq!(s.json["state"], "done", "{s:?}");

    // Once the edge applied it, a new purge of x is queued again, not folded.
    let later = c.purge(&t, json!({"urls": ["http://a.com/x"]})).await;
    assert_eq!(later.json["folded"], 0, "{later:?}");
    assert_eq!(c.queued().await, 3);
    c.stop().await;
}

#[tokio::test]
async fn a_hard_purge_never_folds_into_a_soft_one_and_folding_is_off_by_default() {
    let c = ControlTest::new().fold_window(60_000).start().await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    assert_eq!(c.purge(&t, json!({"urls": ["http://a.com/x"], "soft": true})).await.json["folded"], 0);
    assert_eq!(c.purge(&t, json!({"urls": ["http://a.com/x"]})).await.json["folded"], 0, "hard after soft");
    assert_eq!(c.purge(&t, json!({"urls": ["http://a.com/x"], "soft": true})).await.json["folded"], 1);
    assert_eq!(c.queued().await, 2);
    c.stop().await;

    let c = ControlTest::new().start().await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    for _ in 0..3 {
        assert_eq!(c.purge(&t, json!({"urls": ["http://a.com/x"]})).await.json["folded"], 0);
    }
    assert_eq!(c.queued().await, 3);
    c.stop().await;
}

#[tokio::test]
async fn a_batch_over_fold_max_tasks_is_queued_whole() {
    let c = ControlTest::new().fold_window(60_000).start().await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    let body: String = (0..10_001).map(|i| format!("http://a.com/{i}\n")).collect();
    assert_eq!(c.bulk(&t, "text/plain", body.clone()).await.status, 202);
    let again = c.bulk(&t, "text/plain", body).await;
    assert_eq!(again.json["folded"], 0, "{again:?}");
    assert_eq!(c.queued().await, 20_002);
    c.stop().await;
}
