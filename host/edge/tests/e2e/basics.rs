//! The basics end to end: miss then hit, collapsing, prefix purge, metrics, HEAD, unsafe-method
//! invalidation, a dead origin, an unknown host.

use http::{Method, StatusCode};

use crate::support::{EdgeTest, Gate, Origin, Refusing, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn miss_hit_collapse_purge_and_unknown_host() {
    let origin = Origin::start().await;
    let edge = EdgeTest::new().origin("a.test", &origin).collapse("max-waiters", "100").start().await;

    // Miss, then hit with Age; one origin request.
    let first = edge.get("/a").await;
    first.assert_ok("body of /a").assert_fwd("miss");
    assert!(first.cache_params().contains_key("stored"), "{}", first.cache_status());
    let second = edge.get("/a").await;
    second.assert_ok("body of /a").assert_hit();
    assert!(second.headers.contains_key("age"), "{:?}", second.headers);
    assert_eq!(origin.count("/a"), 1);
    edge.get("/b").await.assert_ok("body of /b");

    // 50 concurrent misses of a new URL, held at the origin until all joined: one origin request.
    let gate = Gate::new();
    origin.set("/slow", Reply::ok("slow body").cc("max-age=600").hold(&gate));
    let before = edge.metric("edgepurge_fill_waiters_total").await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let client = edge.client();
            tokio::spawn(async move { client.get("/slow").await })
        })
        .collect();
    edge.wait_metric("edgepurge_fill_waiters_total", before + 50).await;
    gate.open();
    for task in tasks {
        task.await.unwrap().assert_ok("slow body");
    }
    assert_eq!(origin.count("/slow"), 1);

    // A prefix purge of /a makes /a a miss again, not /b.
    edge.purge_ok("prefix", "http://a.test/a", false).await;
    edge.get("/a").await.assert_ok("body of /a").assert_fwd("miss");
    assert_eq!(origin.count("/a"), 2);
    edge.get("/b").await.assert_hit();
    assert_eq!(origin.count("/b"), 1);

    // A bad task is refused with its reason.
    let (status, message) = edge.purge(r#"{"id": 8, "kind": "url", "target": "/relative"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("/relative"), "{message}");

    // Metrics.
    assert_eq!(edge.metric("edgepurge_purges_total{scope=\"prefix\",mode=\"hard\"}").await, 1);

    // A host without an origin: a clear 4xx.
    let resp = edge.req(Method::GET, "/a").host("nowhere.test").send().await;
    assert!(resp.status.is_client_error(), "{}", resp.status);
    assert!(resp.text().contains("no origin configured for host nowhere.test"), "{}", resp.text());

    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_unsafe_invalidation_and_dead_origin() {
    let origin = Origin::start().await;
    let dead = Refusing::new();
    let edge = EdgeTest::new()
        .origin("a.test", &origin)
        .origin_url("dead.test", &dead.url(), "connect-timeout-ms = 500\nread-timeout-ms = 1000")
        .start()
        .await;

    // HEAD is answered from the stored GET.
    edge.get("/c").await.assert_ok("body of /c");
    let head = edge.head("/c").await;
    assert_eq!(head.status, StatusCode::OK);
    head.assert_hit();
    assert_eq!(origin.count("/c"), 1);

    // A successful POST to /c invalidates it.
    let post = edge.req(Method::POST, "/c").body("x").send().await;
    assert_eq!(post.status, StatusCode::OK);
    post.assert_fwd("method");
    edge.get("/c").await.assert_fwd("miss");
    assert_eq!(origin.count("/c"), 3);

    // An origin refusing connections: 502 with the reason, no hang.
    let resp = edge.req(Method::GET, "/x").host("dead.test").send().await;
    assert_eq!(resp.status, StatusCode::BAD_GATEWAY, "{}", resp.text());

    edge.shutdown().await;
}

#[test]
fn a_config_section_may_set_only_some_keys() {
    let text = "listen = \"127.0.0.1:0\"\n[cache]\nquery-mode = \"ignore\"\n[collapse]\nmax-waiters = 3\n";
    let config = edgepurge_edge::config::EdgeConfig::parse(text, "partial.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.cache.query_mode, edgepurge_url::QueryMode::Ignore);
    assert_eq!(config.cache.capacity_mib, 256, "the other keys keep their defaults");
    assert_eq!((config.collapse.max_waiters, config.collapse.wait_timeout_ms), (3, 10_000));
}
