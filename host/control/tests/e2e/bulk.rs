//! Bulk submissions (`text/plain`, `application/x-ndjson`): accepted all-or-nothing, a bad line
//! reported by its number.

use crate::support::ControlTest;

#[tokio::test]
async fn ten_thousand_urls_in_one_text_request() {
    let c = ControlTest::new().start().await.unwrap();
    let t = c.token("t", &["*.example.com"], false).await;
    let mut body = String::new();
    for i in 0..10_000 {
        body.push_str(&format!("https://h{}.example.com/item/{i}?v=1\r\n", i % 10));
    }
    // Duplicates in the same batch collapse.
    body.push_str("https://h0.example.com/item/0?v=1\n");
    let r = c.bulk(&t, "text/plain; charset=utf-8", body).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["tasks"], 10_000);
    assert_eq!(c.queued().await, 10_000);
    let status = c.send("GET", &format!("/v1/purges/{}", r.json["id"]), Some(&t), &[], "").await;
    let spread: Vec<u64> =
        status.json["queues"].as_array().unwrap().iter().map(|q| q["tasks"].as_u64().unwrap()).collect();
    assert_eq!(spread.iter().sum::<u64>(), 10_000);
    assert!(spread.len() > 1, "a large batch spreads over the queues: {spread:?}");
    c.stop().await;
}

#[tokio::test]
async fn a_bad_line_is_reported_by_number_and_nothing_is_queued() {
    let c = ControlTest::new().start().await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    let mut body = String::new();
    for i in 0..5_000 {
        body.push_str(&format!("http://a.com/{i}\n"));
    }
    body.push_str("http://a.com/has space\n");
    body.push_str("http://a.com/after\n");
    let r = c.bulk(&t, "text/plain", body).await;
    assert_eq!(r.status, 400);
    assert!(r.error().starts_with("line 5001:"), "{}", r.error());
    let bad_utf8 = c.bulk(&t, "text/plain", &b"http://a.com/1\nhttp://a.com/\xc3\x28\n"[..]).await;
    assert_eq!(bad_utf8.status, 400);
    assert!(bad_utf8.error().contains("line 2") && bad_utf8.error().contains("UTF-8"), "{}", bad_utf8.error());
    assert_eq!(c.queued().await, 0, "all or nothing");
    c.stop().await;
}

#[tokio::test]
async fn ndjson_lines_are_strings_or_url_objects() {
    let c = ControlTest::new().limits(|l| l.max_urls = 3).start().await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    let r = c.bulk(&t, "application/x-ndjson", "\"http://a.com/1\"\n{\"url\":\"http://a.com/2\"}\n").await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["tasks"], 2);
    let r = c.bulk(&t, "application/x-ndjson", "\"http://a.com/1\"\n[1]\n").await;
    assert_eq!(r.status, 400);
    assert!(r.error().starts_with("line 2:"), "{}", r.error());
    let four = "\"http://a.com/1\"\n\"http://a.com/2\"\n\"http://a.com/3\"\n\"http://a.com/4\"\n";
    let r = c.bulk(&t, "application/x-ndjson", four).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("line 4") && r.error().contains("max-urls"), "{}", r.error());
    assert_eq!(c.queued().await, 2);
    c.stop().await;
}

#[tokio::test]
async fn a_bulk_body_over_the_byte_limit_is_refused() {
    let c = ControlTest::new().limits(|l| l.max_bulk_bytes = 1000).start().await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    let body: String = (0..100).map(|i| format!("http://a.com/{i}\n")).collect();
    let r = c.bulk(&t, "text/plain", body).await;
    assert_eq!(r.status, 413, "too large, not malformed");
    assert!(r.error().contains("max-bulk-bytes"), "{}", r.error());
    assert_eq!(c.queued().await, 0);
    c.stop().await;
}

/// Issue 15: a million-line body with a bad line at 734,512 is refused naming the line, nothing of
/// it is queued, and a large batch accepted before it (chunks and deferred index rows) is intact:
/// all its tasks queued and found in the records.
#[tokio::test]
async fn a_bad_line_deep_in_a_million_line_body_queues_nothing_of_it() {
    let c = ControlTest::new().start().await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    let before: String = (0..20_000).map(|i| format!("http://a.com/kept/{i}\n")).collect();
    let r = c.bulk(&t, "text/plain", before).await;
    assert_eq!((r.status, r.json["tasks"].as_u64()), (202, Some(20_000)), "{r:?}");
    let mut body = String::with_capacity(30 * 1_000_000);
    for i in 1..=1_000_000u32 {
        if i == 734_512 {
            body.push_str("http://a.com/has space\n");
        } else {
            body.push_str(&format!("http://a.com/x/{i}\n"));
        }
    }
    let r = c.bulk(&t, "text/plain", body).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.error().starts_with("line 734512:"), "{}", r.error());
    assert_eq!(c.queued().await, 20_000, "the earlier batch is all there, nothing of the refused one");
    let records = c.send("GET", "/v1/records?url=http://a.com/kept/19999", Some(&t), &[], "").await;
    assert_eq!(records.status, 200, "{records:?}");
    assert_eq!(records.json["entries"].as_array().map(Vec::len), Some(1), "{}", records.json);
    c.stop().await;
}
