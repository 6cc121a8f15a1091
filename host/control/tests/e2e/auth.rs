//! Authentication, tenancy and the rate limit: 401, 403, 429, and nothing queued on rejection.

use serde_json::json;

use crate::support::ControlTest;

#[tokio::test]
async fn missing_or_wrong_token_is_401_with_www_authenticate() {
    let c = ControlTest::new().start().await.unwrap();
    let body = json!({"urls": ["http://a.com/x"]}).to_string();
    let none = c.send("POST", "/v1/purges", None, &[("content-type", "application/json")], body.clone()).await;
    assert_eq!(none.status, 401);
    assert!(none.header("www-authenticate").starts_with("Bearer"), "{none:?}");
    let wrong = c.purge("ep_not-a-token", json!({"urls": ["http://a.com/x"]})).await;
    assert_eq!(wrong.status, 401);
    let basic = c.send("POST", "/v1/purges", None, &[("authorization", "Basic eDp5")], body).await;
    assert_eq!(basic.status, 401);
    assert_eq!(c.send("GET", "/v1/purges/1", None, &[], "").await.status, 401);
    assert_eq!(c.queued().await, 0);
    c.stop().await;
}

#[tokio::test]
async fn a_host_outside_the_tokens_patterns_is_403_naming_it_and_nothing_is_queued() {
    let c = ControlTest::new().start().await.unwrap();
    let t = c.token("shop", &["example.com", "*.example.com"], false).await;
    let r = c.purge(&t, json!({"urls": ["https://www.example.com/a", "https://evil.net/b"]})).await;
    assert_eq!(r.status, 403);
    assert!(r.error().contains("evil.net") && r.error().contains("urls[1]"), "{}", r.error());
    let r = c.purge(&t, json!({"hosts": ["other.org"]})).await;
    assert_eq!(r.status, 403);
    assert!(r.error().contains("other.org"));
    let r = c.purge(&t, json!({"prefixes": ["https://notexample.com/"]})).await;
    assert_eq!(r.status, 403);
    let r = c.bulk(&t, "text/plain", "https://example.com/1\nhttps://evil.net/2\n").await;
    assert_eq!(r.status, 403);
    assert!(r.error().contains("line 2"), "{}", r.error());
    assert_eq!(c.queued().await, 0, "a rejected request queues nothing");
    let ok = c.purge(&t, json!({"urls": ["https://a.b.example.com/x"], "hosts": ["example.com"]})).await;
    assert_eq!(ok.status, 202, "{ok:?}");
    assert_eq!(c.queued().await, 2);
    c.stop().await;
}

#[tokio::test]
async fn everything_and_tags_need_an_admin_token() {
    let c = ControlTest::new().start().await.unwrap();
    let user = c.token("user", &["example.com"], false).await;
    let admin = c.token("root", &[], true).await;
    let r = c.purge(&user, json!({"everything": true})).await;
    assert_eq!(r.status, 403);
    assert!(r.error().contains("admin"));
    assert_eq!(c.purge(&user, json!({"tags": ["product-1"]})).await.status, 403);
    assert_eq!(c.queued().await, 0);
    let r = c.purge(&admin, json!({"everything": true, "tags": ["product-1"], "urls": ["http://any.org/"]})).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["tasks"], 3);
    c.stop().await;
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_headers_and_queues_nothing() {
    // Refill so slow that no token comes back during the test: the outcome never depends on timing.
    let c = ControlTest::new().rate_limit(2, 0.001).start().await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    let other = c.token("other", &["a.com"], false).await;
    let first = c.purge(&t, json!({"urls": ["http://a.com/1"]})).await;
    assert_eq!(first.status, 202);
    assert_eq!(first.header("ratelimit-limit"), "2");
    assert_eq!(first.header("ratelimit-remaining"), "1");
    assert_eq!(c.purge(&t, json!({"urls": ["http://a.com/2"]})).await.status, 202);
    let limited = c.purge(&t, json!({"urls": ["http://a.com/3"]})).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert!(limited.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(limited.header("ratelimit-limit"), "2");
    assert_eq!(limited.header("ratelimit-remaining"), "0");
    assert!(limited.header("ratelimit-reset").parse::<u64>().unwrap() >= 1);
    assert_eq!(c.queued().await, 2, "the limited request queued nothing");
    // A request refused after the rate check (here a 400) still reports the bucket.
    let other_bad = c.purge(&other, json!({"urls": ["nope"]})).await;
    assert_eq!(other_bad.status, 400);
    assert_eq!(other_bad.header("ratelimit-remaining"), "1");
    // Buckets are per token.
    assert_eq!(c.purge(&other, json!({"urls": ["http://a.com/3"]})).await.status, 202);
    c.stop().await;
}
