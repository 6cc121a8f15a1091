//! JSON submissions: the 202 body, duplicates, idempotency and validation (400 naming the item).

use serde_json::json;

use crate::support::ControlTest;

#[tokio::test]
async fn a_json_purge_is_accepted_normalised_and_deduplicated() {
    let c = ControlTest::new().start().await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    let r = c
        .purge(
            &t,
            json!({"urls": ["HTTPS://A.com:443/x#frag", "http://a.com/x", "http://a.com/%7ey"],
                   "prefixes": ["https://a.com/img/"], "soft": true}),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["tasks"], 3, "the two spellings of /x are one task");
    assert!(r.json["id"].as_u64().unwrap() >= 1);
    assert!(r.json["queued_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(r.json["replayed"], false);
    assert_eq!(r.header("location"), format!("/v1/purges/{}", r.json["id"]));
    assert_eq!(c.queued().await, 3);
    let mut targets = Vec::new();
    for q in 0..4 {
        use edgepurge_control_store::QueueStore;
        for task in c.store.read(q, 1, 100).await.unwrap() {
            assert!(task.soft);
            targets.push(task.target);
        }
    }
    targets.sort();
    assert_eq!(targets, ["http://a.com/img/", "http://a.com/x", "http://a.com/~y"]);
    c.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_batch_and_queues_nothing_new() {
    let c = ControlTest::new().start().await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    let body = json!({"urls": ["http://a.com/1", "http://a.com/2"]}).to_string();
    let headers = [("content-type", "application/json"), ("idempotency-key", "k-1")];
    let first = c.send("POST", "/v1/purges", Some(&t), &headers, body.clone()).await;
    assert_eq!(first.status, 202);
    let again = c.send("POST", "/v1/purges", Some(&t), &headers, body).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.json["id"], first.json["id"]);
    assert_eq!(again.json["queued_at"], first.json["queued_at"]);
    assert_eq!(again.json["replayed"], true);
    assert_eq!(c.queued().await, 2);
    // Another key is another batch.
    let other = [("content-type", "application/json"), ("idempotency-key", "k-2")];
    let third = c.send("POST", "/v1/purges", Some(&t), &other, json!({"urls": ["http://a.com/3"]}).to_string()).await;
    assert_ne!(third.json["id"], first.json["id"]);
    assert_eq!(c.queued().await, 3);
    c.stop().await;
}

#[tokio::test]
async fn invalid_requests_are_400_naming_the_item_and_queue_nothing() {
    let c = ControlTest::new().limits(|l| (l.max_urls, l.max_json_bytes) = (3, 16_384)).start().await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    let cases = [
        (json!({"urls": ["http://a.com/1", "/relative"]}), "urls[1]"),
        (json!({"urls": ["ftp://a.com/x"]}), "urls[0]"),
        (json!({"urls": ["http://a.com/a\u{1}b"]}), "urls[0]"),
        (json!({"urls": [format!("http://a.com/{}", "x".repeat(9000))]}), "max-url-bytes"),
        (json!({"urls": ["http://a.com/1", "http://a.com/2", "http://a.com/3", "http://a.com/4"]}), "max-urls"),
        (json!({"prefixes": ["http://a.com"]}), "prefixes[0]"),
        (json!({"url": ["http://a.com/"]}), "unknown field"),
        (json!({}), "empty"),
    ];
    for (body, needle) in cases {
        let r = c.purge(&t, body.clone()).await;
        let shown: String = body.to_string().chars().take(120).collect();
        assert_eq!(r.status, 400, "{shown}: {r:?}");
        assert!(r.error().contains(needle), "{shown}: `{}` lacks `{needle}`", r.error());
    }
    let big = json!({"urls": ["http://a.com/".to_string() + &"x".repeat(20_000)]}).to_string();
    let r = c.send("POST", "/v1/purges", Some(&t), &[("content-type", "application/json")], big).await;
    assert_eq!(r.status, 413, "too large, not malformed");
    assert!(r.error().contains("max-json-bytes"), "{}", r.error());
    let r = c
        .send("POST", "/v1/purges", Some(&t), &[("content-type", "application/json")], &b"{\"urls\": [\"\xff\"]}"[..])
        .await;
    assert_eq!(r.status, 400);
    let r = c.send("POST", "/v1/purges", Some(&t), &[("content-type", "application/xml")], "<x/>").await;
    assert_eq!(r.status, 415);
    assert_eq!(c.queued().await, 0);
    c.stop().await;
}
