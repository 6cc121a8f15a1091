//! The edge's switches over RFC 9111: client `Cache-Control` ignored by default and honoured with
//! `honor-client-cache-control` (S3.1), the query-string modes (S3.5), and `honor-origin = false`
//! with a default TTL (S3.4).

use http::Method;

use crate::support::{EdgeTest, Origin, Reply};

#[tokio::test]
async fn client_cache_control_is_ignored_by_default() {
    let origin = Origin::start().await;
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    edge.get("/a").await.assert_fwd("miss");
    for cc in ["no-cache", "max-age=0", "no-store", "min-fresh=100000"] {
        let resp = edge.req(Method::GET, "/a").header("cache-control", cc).send().await;
        assert!(resp.is_hit(), "client `{cc}` was honoured: `{}`", resp.cache_status());
    }
    // A client no-store does not keep the response out of the cache either.
    edge.req(Method::GET, "/b").header("cache-control", "no-store").send().await.assert_fwd("miss");
    edge.get("/b").await.assert_hit();
    assert_eq!((origin.count("/a"), origin.count("/b")), (1, 1));
    edge.shutdown().await;
}

#[tokio::test]
async fn client_cache_control_is_honoured_when_configured() {
    let origin = Origin::start().await;
    origin.set("/a", Reply::ok("a").cc("max-age=600").header("etag", "\"a1\"").conditional());
    let edge = EdgeTest::new().origin("a.test", &origin).cache("honor-client-cache-control", "true").start().await;
    edge.get("/a").await.assert_ok("a");
    edge.get("/a").await.assert_hit();
    // no-cache and max-age=0 force a revalidation with the stored validator.
    for (n, cc) in [(2, "no-cache"), (3, "max-age=0"), (4, "min-fresh=100000")] {
        let resp = edge.req(Method::GET, "/a").header("cache-control", cc).send().await;
        resp.assert_ok("a");
        assert!(!resp.is_hit(), "client `{cc}` was ignored: `{}`", resp.cache_status());
        assert_eq!(origin.count("/a"), n, "{cc}");
        assert_eq!(origin.last("/a").header("if-none-match").as_deref(), Some("\"a1\""), "{cc}");
    }
    // A fresh response the client refused is forwarded for the request's sake (RFC 9211).
    let resp = edge.req(Method::GET, "/a").header("cache-control", "no-cache").send().await;
    resp.assert_fwd("request");
    // A max-age the stored response satisfies is a hit.
    edge.req(Method::GET, "/a").header("cache-control", "max-age=3600").send().await.assert_hit();
    // A client no-store keeps the response out of the cache.
    let resp = edge.req(Method::GET, "/b").header("cache-control", "no-store").send().await;
    assert_eq!(resp.detail().as_deref(), Some("no-store"), "`{}`", resp.cache_status());
    edge.get("/b").await.assert_fwd("miss");
    edge.shutdown().await;
}

#[tokio::test]
async fn query_mode_ignore_shares_one_object_across_query_strings() {
    let origin = Origin::start().await;
    let edge = EdgeTest::new().origin("a.test", &origin).cache("query-mode", "\"ignore\"").start().await;
    edge.get("/q?a=1").await.assert_ok("body of /q?a=1").assert_fwd("miss");
    edge.get("/q?a=2").await.assert_ok("body of /q?a=1").assert_hit();
    edge.get("/q").await.assert_ok("body of /q?a=1").assert_hit();
    assert_eq!(origin.count("/q?a=1") + origin.count("/q?a=2") + origin.count("/q"), 1);
    edge.shutdown().await;
}

#[tokio::test]
async fn query_mode_ignore_objects_are_found_by_url_purges_and_unsafe_methods_of_any_query() {
    let origin = Origin::start().await;
    let edge = EdgeTest::new().origin("a.test", &origin).cache("query-mode", "\"ignore\"").start().await;
    edge.get("/q?a=1").await.assert_fwd("miss");
    edge.purge_ok("url", "http://a.test/q?a=2", false).await;
    edge.get("/q?a=1").await.assert_fwd("miss");
    edge.purge_ok("url", "http://a.test/q", false).await;
    edge.get("/q?a=3").await.assert_fwd("miss");
    edge.get("/q?a=4").await.assert_hit();
    // A successful POST to any URL of the object invalidates it (RFC 9111 §4.4).
    let post = edge.req(Method::POST, "/q?a=5").body("x").send().await;
    assert_eq!(post.status, http::StatusCode::OK);
    edge.get("/q?a=4").await.assert_fwd("miss");
    edge.shutdown().await;
}

#[tokio::test]
async fn responses_larger_than_max_object_stream_through_uncached() {
    let origin = Origin::start().await;
    let big = "b".repeat(3 << 20);
    origin.set("/big", Reply::ok(big.clone()).cc("max-age=600"));
    origin.set("/small", Reply::ok("small").cc("max-age=600"));
    let edge = EdgeTest::new().origin("a.test", &origin).cache("max-object-mib", "1").start().await;
    for n in 1..=2 {
        let resp = edge.get("/big").await;
        assert_eq!(resp.body.len(), big.len(), "round {n}");
        assert!(!resp.is_hit());
        assert_eq!(origin.count("/big"), n);
    }
    edge.get("/small").await;
    edge.get("/small").await.assert_hit();
    edge.shutdown().await;
}

#[tokio::test]
async fn query_mode_unique_keys_every_query_string() {
    let origin = Origin::start().await;
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    edge.get("/q?a=1").await.assert_ok("body of /q?a=1");
    edge.get("/q?a=2").await.assert_ok("body of /q?a=2").assert_fwd("miss");
    edge.get("/q?a=1").await.assert_ok("body of /q?a=1").assert_hit();
    edge.get("/q?a=2").await.assert_hit();
    assert_eq!((origin.count("/q?a=1"), origin.count("/q?a=2")), (1, 1));
    edge.shutdown().await;
}

#[tokio::test]
async fn query_mode_bypass_never_caches_urls_with_a_query() {
    let origin = Origin::start().await;
    let edge = EdgeTest::new().origin("a.test", &origin).cache("query-mode", "\"bypass\"").start().await;
    for n in 1..=2 {
        let resp = edge.get("/q?a=1").await;
        resp.assert_ok("body of /q?a=1").assert_fwd("bypass");
        assert_eq!(origin.count("/q?a=1"), n);
    }
    edge.get("/q").await.assert_fwd("miss");
    edge.get("/q").await.assert_hit();
    edge.shutdown().await;
}

#[tokio::test]
async fn honor_origin_off_applies_the_default_ttl_but_keeps_storage_prohibitions() {
    let origin = Origin::start().await;
    origin.set("/zero", Reply::ok("z").cc("max-age=0"));
    origin.set("/no-cache", Reply::ok("n").cc("no-cache"));
    origin.set("/past", Reply::ok("p").header("expires", crate::support::http_date_ago(600)));
    origin.set("/no-store", Reply::ok("s").cc("no-store"));
    let edge = EdgeTest::new()
        .origin("a.test", &origin)
        .cache("honor-origin", "false")
        .cache("default-ttl-secs", "600")
        .start()
        .await;
    for path in ["/zero", "/no-cache", "/past"] {
        edge.get(path).await;
        let hit = edge.get(path).await;
        hit.assert_hit();
        let ttl: i64 = hit.cache_params()["ttl"].parse().unwrap();
        assert!((1..=600).contains(&ttl), "{path}: ttl {ttl}");
        assert_eq!(origin.count(path), 1, "{path}");
    }
    edge.get("/no-store").await;
    assert!(!edge.get("/no-store").await.is_hit());
    assert_eq!(origin.count("/no-store"), 2);
    edge.shutdown().await;

    // Without a default TTL the origin's freshness is still not used: stored, always revalidated.
    let origin = Origin::start().await;
    origin.set("/a", Reply::ok("a").cc("max-age=600").header("etag", "\"a1\"").conditional());
    let edge = EdgeTest::new().origin("a.test", &origin).cache("honor-origin", "false").start().await;
    edge.get("/a").await;
    edge.get("/a").await.assert_ok("a").assert_fwd("stale");
    assert_eq!(origin.count("/a"), 2);
    assert_eq!(origin.last("/a").header("if-none-match").as_deref(), Some("\"a1\""));
    edge.shutdown().await;
}
