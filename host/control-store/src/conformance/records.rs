//! Conformance checks on records: progress from watermarks, record queries, folding, tokens.

use super::{batch, urls, Harness};
use crate::model::*;
use crate::{Error, QueueStore, RecordStore, TokenHash, TokenStore};

fn applied(p: &Progress) -> Vec<(&str, u64, u64)> {
    p.edges.iter().map(|e| (e.edge.as_str(), e.applied, e.total)).collect()
}

/// 0 %, partial, done: progress is computed from per-edge, per-queue watermarks.
pub async fn progress_follows_watermarks<H: Harness>(h: &H) {
    let store = h.create(2).await;
    store.register_edge("a", 100).await.unwrap();
    store.register_edge("b", 100).await.unwrap();
    // Something already in queue 0, so the batch's offsets do not start at 1 there.
    store.append(batch("t", 150), urls(0, "old", 5)).await.unwrap();
    let mut tasks = urls(0, "q0", 4);
    tasks.extend(urls(1, "q1", 6));
    let id = store.append(batch("t", 200), tasks).await.unwrap().batch.id;

    let p = store.progress(id).await.unwrap().expect("exists");
    assert_eq!(applied(&p), vec![("a", 0, 10), ("b", 0, 10)]);
    assert!(!p.done);
    assert_eq!(p.percent(), 0.0);

    store.set_watermark("a", 0, 5, 300).await.unwrap(); // only the older batch
    store.set_watermark("a", 1, 3, 300).await.unwrap(); // half of queue 1
    store.set_watermark("b", 0, 7, 300).await.unwrap(); // 2 of 4 on queue 0
    let p = store.progress(id).await.unwrap().unwrap();
    assert_eq!(applied(&p), vec![("a", 3, 10), ("b", 2, 10)]);
    assert_eq!(p.percent(), 25.0);

    store.set_watermark("a", 0, 9, 400).await.unwrap();
    store.set_watermark("a", 1, 6, 400).await.unwrap();
    store.set_watermark("a", 1, 2, 401).await.unwrap(); // a late, lower report changes nothing
    let p = store.progress(id).await.unwrap().unwrap();
    assert_eq!(applied(&p), vec![("a", 10, 10), ("b", 2, 10)]);
    assert!(!p.done);
    store.set_watermark("b", 0, 100, 500).await.unwrap(); // beyond the batch: caps at its size
    store.set_watermark("b", 1, 6, 500).await.unwrap();
    let p = store.progress(id).await.unwrap().unwrap();
    assert!(p.done);
    assert_eq!(p.percent(), 100.0);
    let marks = store.watermarks().await.unwrap();
    assert_eq!(marks.iter().find(|w| w.edge == "a" && w.queue == 1).map(|w| w.applied), Some(6));
    assert_eq!(store.lowest_watermarks().await.unwrap(), Some(vec![9, 6]));

    assert!(store.progress(id + 1000).await.unwrap().is_none());
    assert!(matches!(store.set_watermark("nobody", 0, 1, 1).await, Err(Error::UnknownEdge(_))));
    assert!(matches!(store.set_watermark("a", 2, 1, 1).await, Err(Error::NoSuchQueue { queue: 2, .. })));
}

/// Failure reports: counted per edge for the batch that owns the task, once per task, for
/// known edges and tasks only.
pub async fn failures_are_counted_per_edge_and_batch<H: Harness>(h: &H) {
    let store = h.create(1).await;
    store.register_edge("a", 100).await.unwrap();
    store.register_edge("b", 100).await.unwrap();
    let first = store.append(batch("t", 200), urls(0, "one", 3)).await.unwrap().batch.id; // offsets 1..=3
    let second = store.append(batch("t", 200), urls(0, "two", 2)).await.unwrap().batch.id; // 4..=5
    store.report_failure("a", 0, 2, "origin refused", 300).await.unwrap();
    store.report_failure("a", 0, 2, "again", 301).await.unwrap(); // the same task: counted once
    store.report_failure("b", 0, 4, "disk full", 300).await.unwrap();
    let failed = |p: &Progress| p.edges.iter().map(|e| (e.edge.clone(), e.failed)).collect::<Vec<_>>();
    let p = store.progress(first).await.unwrap().unwrap();
    assert_eq!(failed(&p), vec![("a".to_owned(), 1), ("b".to_owned(), 0)]);
    // The batch's status can say what went wrong where: the first report is kept.
    let expected = TaskFailureRecord {
        edge: "a".into(),
        task: TaskRef { queue: 0, offset: 2 },
        kind: TaskKind::Url,
        target: p.failures.first().map(|f| f.target.clone()).unwrap_or_default(),
        reason: "origin refused".into(),
        at: 300,
    };
    assert_eq!(p.failures, vec![expected]);
    assert!(p.failures[0].target.contains("one"), "{:?}", p.failures);
    let p = store.progress(second).await.unwrap().unwrap();
    assert_eq!(failed(&p), vec![("a".to_owned(), 0), ("b".to_owned(), 1)]);
    assert_eq!(
        p.failures.iter().map(|f| (f.edge.as_str(), f.reason.as_str())).collect::<Vec<_>>(),
        [("b", "disk full")]
    );
    assert!(matches!(store.report_failure("nobody", 0, 1, "x", 1).await, Err(Error::UnknownEdge(_))));
    assert!(matches!(store.report_failure("a", 0, 99, "x", 1).await, Err(Error::UnknownTask { queue: 0, offset: 99 })));
}

/// An edge registered after a batch was accepted does not count for it; a decommissioned edge
/// counts for nothing and no longer holds back the lowest watermark.
pub async fn edges_after_acceptance_or_decommissioned_do_not_count<H: Harness>(h: &H) {
    let store = h.create(1).await;
    let none = store.append(batch("t", 50), urls(0, "early", 2)).await.unwrap().batch.id;
    let p = store.progress(none).await.unwrap().unwrap();
    assert!(p.edges.is_empty() && p.done, "no edge counts: nothing to wait for");
    assert_eq!(store.lowest_watermarks().await.unwrap(), None);

    store.register_edge("a", 100).await.unwrap();
    store.register_edge("slow", 100).await.unwrap();
    let id = store.append(batch("t", 200), urls(0, "b", 3)).await.unwrap().batch.id;
    let late = store.register_edge("late", 300).await.unwrap();
    assert_eq!((late.registered_at, late.decommissioned_at), (300, None));
    store.set_watermark("a", 0, 5, 400).await.unwrap();
    let p = store.progress(id).await.unwrap().unwrap();
    assert_eq!(applied(&p), vec![("a", 3, 3), ("slow", 0, 3)], "late is not counted");
    assert!(!p.done);
    assert_eq!(store.lowest_watermarks().await.unwrap(), Some(vec![0]));

    store.decommission_edge("slow", 500).await.unwrap();
    let p = store.progress(id).await.unwrap().unwrap();
    assert_eq!(applied(&p), vec![("a", 3, 3)]);
    assert!(p.done);
    assert_eq!(store.lowest_watermarks().await.unwrap(), Some(vec![0]), "late has applied nothing");
    store.set_watermark("late", 0, 5, 600).await.unwrap();
    assert_eq!(store.lowest_watermarks().await.unwrap(), Some(vec![5]));
    let edges = store.edges().await.unwrap();
    assert_eq!(
        edges.iter().map(|e| (e.name.as_str(), e.decommissioned_at)).collect::<Vec<_>>(),
        vec![("a", None), ("late", None), ("slow", Some(500))]
    );
    assert!(matches!(store.decommission_edge("nobody", 1).await, Err(Error::UnknownEdge(_))));
    // Coming back after a decommission starts afresh, from the new registration time.
    assert_eq!(store.register_edge("slow", 700).await.unwrap().registered_at, 700);
    assert_eq!(store.register_edge("a", 800).await.unwrap().registered_at, 100, "re-registering keeps the time");
}

async fn all_records<S: RecordStore>(store: &S, query: RecordQuery, page: usize) -> Vec<RecordEntry> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let got = store.records(query.clone(), after, page).await.unwrap();
        assert!(got.entries.len() <= page);
        out.extend(got.entries);
        match got.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

fn targets(entries: &[RecordEntry]) -> Vec<(TaskKind, &str)> {
    entries.iter().map(|e| (e.kind, e.target.as_str())).collect()
}

/// Record queries find every request that covered a URL, a prefix, a tag or a host, oldest
/// first, in pages.
pub async fn records_by_url_prefix_tag_host_with_paging<H: Harness>(h: &H) {
    use TaskKind::*;
    let store = h.create(2).await;
    let u = "https://a.example/img/1.png";
    let t = |kind, target: &str, host: &str| NewTask::new(0, kind, target, host);
    store
        .append(batch("alice", 10), vec![t(Url, u, "a.example"), t(Url, "https://a.example/img/2.png", "a.example")])
        .await
        .unwrap();
    store.append(batch("bob", 20), vec![t(Prefix, "https://a.example/im", "a.example")]).await.unwrap();
    store.append(batch("bob", 30), vec![t(Tag, "img", "a.example"), t(Host, "b.example", "b.example")]).await.unwrap();
    store.append(batch("root", 40), vec![t(Everything, "", "")]).await.unwrap();
    store
        .append(batch("alice", 50), vec![t(Warm, u, "a.example"), t(Prefix, "https://a.example/imgx", "a.example")])
        .await
        .unwrap();

    let url = RecordQuery::Url { url: u.into(), host: "a.example".into() };
    let got = all_records(&store, url, 2).await;
    assert_eq!(targets(&got), vec![(Url, u), (Prefix, "https://a.example/im"), (Everything, ""), (Warm, u)]);
    assert_eq!((got[0].token_name.as_str(), got[0].accepted_at), ("alice", 10));
    assert_eq!(got[0].carried_by, TaskRef { queue: 0, offset: 1 });
    assert!(!got[0].folded);

    let prefix = all_records(&store, RecordQuery::Prefix("https://a.example/img".into()), 1).await;
    assert_eq!(
        targets(&prefix),
        vec![
            (Url, u),
            (Url, "https://a.example/img/2.png"),
            (Prefix, "https://a.example/im"),
            (Everything, ""),
            (Warm, u),
            (Prefix, "https://a.example/imgx"),
        ]
    );
    let tag = all_records(&store, RecordQuery::Tag("img".into()), 10).await;
    assert_eq!(targets(&tag), vec![(Tag, "img"), (Everything, "")]);
    let host = all_records(&store, RecordQuery::Host("b.example".into()), 10).await;
    assert_eq!(targets(&host), vec![(Host, "b.example"), (Everything, "")]);
    assert_eq!(all_records(&store, RecordQuery::Host("a.example".into()), 3).await.len(), 7);
    let none = store.records(RecordQuery::Tag("nothing".into()), None, 10).await.unwrap();
    assert_eq!(none.entries.len(), 1, "only the everything purge");
    assert_eq!(none.next, None);
}

/// S2.3: a repeat finds the latest still-undelivered task for the same target within the
/// window; folded requests are on record, pointing at the task that carried them.
pub async fn folding_finds_undelivered_tasks_only<H: Harness>(h: &H) {
    let store = h.create(2).await;
    store.register_edge("e", 0).await.unwrap();
    let u = "https://a.example/hot";
    store.append(batch("t", 100), urls(0, "pad", 2)).await.unwrap();
    let mut hard = NewTask::new(1, TaskKind::Url, u, "a.example");
    hard.soft = false;
    store.append(batch("t", 1000), vec![hard]).await.unwrap();
    let carrier = TaskRef { queue: 1, offset: 1 };

    let find = |soft, since| store.find_fold_target(TaskKind::Url, u, soft, since);
    assert_eq!(find(false, 900).await.unwrap(), Some(carrier));
    assert_eq!(find(true, 900).await.unwrap(), Some(carrier), "a soft repeat folds into a hard task");
    assert_eq!(find(false, 1001).await.unwrap(), None, "outside the window");
    assert_eq!(store.find_fold_target(TaskKind::Prefix, u, false, 0).await.unwrap(), None, "another kind");

    let folded = NewTask { placement: Placement::FoldInto(carrier), ..NewTask::new(0, TaskKind::Url, u, "a.example") };
    let b = store.append(batch("t", 1100), vec![folded]).await.unwrap().batch;
    assert_eq!((b.spans[0].queue, b.spans[0].own, b.spans[0].folded, b.spans[0].folded_last), (1, 0, 1, 1));
    assert_eq!(store.queue_info().await.unwrap()[1].next, 2, "a folded task takes no offset");
    let recs = all_records(&store, RecordQuery::Url { url: u.into(), host: "a.example".into() }, 10).await;
    assert_eq!(recs.len(), 2);
    assert_eq!((recs[1].batch, recs[1].carried_by, recs[1].folded), (b.id, carrier, true));
    assert!(!store.progress(b.id).await.unwrap().unwrap().done);

    // A soft task cannot carry a hard repeat.
    let mut soft = NewTask::new(0, TaskKind::Url, "https://a.example/soft", "a.example");
    soft.soft = true;
    store.append(batch("t", 1200), vec![soft]).await.unwrap();
    let soft_find = |s| store.find_fold_target(TaskKind::Url, "https://a.example/soft", s, 0);
    assert_eq!(soft_find(false).await.unwrap(), None);
    assert_eq!(soft_find(true).await.unwrap(), Some(TaskRef { queue: 0, offset: 3 }));

    // Once every edge has applied the carrier, a repeat must be queued again.
    store.set_watermark("e", 1, 1, 1300).await.unwrap();
    assert_eq!(find(false, 0).await.unwrap(), None);
    assert!(store.progress(b.id).await.unwrap().unwrap().done, "the folded request is done with its carrier");
}

/// The queue server's writes: a progress report (watermarks and failures in one step, failures
/// for tasks not in the log skipped), the edge's last policy report, and when it was last seen.
pub async fn edge_reports_and_policy_are_recorded<H: Harness>(h: &H) {
    let store = h.create(2).await;
    let id = store.append(batch("t", 100), urls(0, "r", 4)).await.unwrap().batch.id; // offsets 1..=4
    let e = store.register_edge("e", 200).await.unwrap();
    assert_eq!((e.last_seen, e.policy.clone()), (Some(200), None), "registering counts as seen");
    store.register_edge("f", 50).await.unwrap(); // registered before the batch: counts for it

    let report = EdgeReport {
        applied: vec![(0, 4), (1, 0)],
        failures: vec![
            (TaskRef { queue: 0, offset: 2 }, "origin said no".into()),
            (TaskRef { queue: 0, offset: 99 }, "x".into()),
        ],
    };
    assert_eq!(store.record_report("f", report.clone(), 300).await.unwrap(), 1, "the unknown task is skipped");
    let p = store.progress(id).await.unwrap().unwrap();
    assert_eq!(p.edges.iter().map(|e| (e.edge.as_str(), e.applied, e.failed)).collect::<Vec<_>>(), vec![("f", 4, 1)]);
    assert!(p.done);
    // Watermarks never go back, and a repeat of a failure keeps the first report.
    let lower = EdgeReport { applied: vec![(0, 1)], failures: report.failures[..1].to_vec() };
    store.record_report("f", lower, 400).await.unwrap();
    let marks = store.watermarks().await.unwrap();
    assert_eq!(marks.iter().find(|w| w.edge == "f" && w.queue == 0).map(|w| w.applied), Some(4));
    assert_eq!(store.progress(id).await.unwrap().unwrap().edges[0].failed, 1);

    // All or nothing: an unknown queue or edge writes nothing.
    let bad = EdgeReport { applied: vec![(1, 1), (7, 1)], failures: Vec::new() };
    assert!(matches!(store.record_report("f", bad, 500).await, Err(Error::NoSuchQueue { queue: 7, .. })));
    let f1 = store.watermarks().await.unwrap().into_iter().find(|w| w.edge == "f" && w.queue == 1).map(|w| w.applied);
    assert_eq!(f1, Some(0), "nothing of a refused report is written");
    assert!(matches!(store.record_report("nobody", EdgeReport::default(), 1).await, Err(Error::UnknownEdge(_))));

    let policy = EdgePolicy { name: "shop".into(), version: "1.2.0".into(), sha256: "ab".repeat(32), error: None };
    store.set_edge_policy("e", policy.clone(), 600).await.unwrap();
    let refused = EdgePolicy { error: Some("does not export select-queue".into()), ..policy.clone() };
    store.set_edge_policy("f", refused.clone(), 650).await.unwrap();
    let edges = store.edges().await.unwrap();
    let seen: Vec<_> = edges.iter().map(|e| (e.name.as_str(), e.last_seen, e.policy.clone())).collect();
    assert_eq!(seen, vec![("e", Some(600), Some((policy, 600))), ("f", Some(650), Some((refused, 650)))]);
    assert!(matches!(
        store.set_edge_policy("nobody", EdgePolicy { error: None, ..edges[0].policy.clone().unwrap().0 }, 1).await,
        Err(Error::UnknownEdge(_))
    ));
    // Seen times never move back; they survive a restart with the policy reports.
    store.register_edge("e", 10).await.unwrap();
    let store = h.reopen(store).await;
    let e = store.edges().await.unwrap().into_iter().find(|e| e.name == "e").unwrap();
    assert_eq!((e.last_seen, e.policy.map(|p| p.1)), (Some(600), Some(600)));
}

/// Tokens are stored and found by hash; a wrong token finds nothing.
pub async fn tokens_are_found_by_hash_only<H: Harness>(h: &H) {
    let store = h.create(1).await;
    let token = ApiToken {
        name: "ci".into(),
        hosts: vec!["a.example".into(), "*.a.example".into()],
        admin: false,
        created_at: 5,
    };
    store.insert_token(TokenHash::of("s3cret-plain-token"), token.clone()).await.unwrap();
    let admin = ApiToken { name: "root".into(), hosts: Vec::new(), admin: true, created_at: 6 };
    store.insert_token(TokenHash::of("another-token"), admin.clone()).await.unwrap();
    assert_eq!(store.find_token(TokenHash::of("s3cret-plain-token")).await.unwrap(), Some(token.clone()));
    assert_eq!(store.find_token(TokenHash::of("another-token")).await.unwrap(), Some(admin));
    assert_eq!(store.find_token(TokenHash::of("s3cret-plain-tokeN")).await.unwrap(), None);
    assert_eq!(store.find_token(TokenHash::of("")).await.unwrap(), None);
    let dup = store.insert_token(TokenHash::of("third"), token).await;
    assert!(matches!(dup, Err(Error::DuplicateToken(name)) if name == "ci"));
    assert!(store.delete_token("ci").await.unwrap());
    assert!(!store.delete_token("ci").await.unwrap());
    assert_eq!(store.find_token(TokenHash::of("s3cret-plain-token")).await.unwrap(), None);
}

/// A large batch (its task rows may be written after the append returns) is in the records and
/// takes failure reports as soon as `append` has returned, and its tasks read back in order.
pub async fn a_large_batch_is_recorded_as_soon_as_it_is_accepted<H: Harness>(h: &H) {
    let store = h.create(2).await;
    store.register_edge("e1", 1).await.unwrap();
    let mut tasks = urls(0, "big", 3000);
    tasks.extend(urls(1, "other", 2000));
    let appended = store.append(batch("alice", 5), tasks).await.unwrap();
    // At once: a failure of a task deep in the batch, and a query for another.
    store.report_failure("e1", 1, 1500, "origin said 503", 6).await.unwrap();
    let url = RecordQuery::Url { url: "https://h.example/big/2999".into(), host: "h.example".into() };
    let got = all_records(&store, url, 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].batch, got[0].carried_by), (appended.batch.id, TaskRef { queue: 0, offset: 3000 }));
    let progress = store.progress(appended.batch.id).await.unwrap().unwrap();
    assert_eq!(progress.edges[0].failed, 1);
    assert_eq!(progress.failures[0].task, TaskRef { queue: 1, offset: 1500 });
    assert_eq!(progress.failures[0].target, "https://h.example/other/1499");
    let read = store.read(1, 1999, 10).await.unwrap();
    assert_eq!(read.iter().map(|t| t.at.offset).collect::<Vec<_>>(), vec![1999, 2000]);
    assert_eq!(read[1].target, "https://h.example/other/1999");
}
