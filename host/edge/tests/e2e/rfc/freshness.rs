//! Freshness (RFC 9111 §4.2): `max-age`, `s-maxage` over `max-age`, `Expires`, an origin `Age`
//! that uses up freshness, heuristic freshness only where allowed, `Pragma`.
//!
//! Stale responses are made stale on arrival (an `Age` or `Expires` in the past), fresh ones get
//! ten minutes: no test waits for a clock.

use http::{Method, StatusCode};

use crate::support::{http_date_ago, EdgeTest, Origin, Reply};

/// Asserts the second request for `path` is a hit and the origin was asked once.
async fn assert_cached(edge: &crate::support::Running, origin: &Origin, path: &str) {
    edge.get(path).await;
    let again = edge.get(path).await;
    assert!(again.is_hit(), "{path}: expected a hit, got `{}`", again.cache_status());
    assert_eq!(origin.count(path), 1, "{path}");
}

/// Asserts the second request for `path` went to the origin.
async fn assert_not_reused(edge: &crate::support::Running, origin: &Origin, path: &str) {
    edge.get(path).await;
    let again = edge.get(path).await;
    assert!(!again.is_hit(), "{path}: expected the origin to be asked, got `{}`", again.cache_status());
    assert_eq!(origin.count(path), 2, "{path}");
}

#[tokio::test]
async fn max_age_is_fresh_and_an_origin_age_uses_it_up() {
    let origin = Origin::start().await;
    origin.set("/fresh", Reply::ok("f").cc("max-age=600"));
    origin.set("/aged", Reply::ok("a").cc("max-age=600").header("age", "100"));
    origin.set("/too-old", Reply::ok("o").cc("max-age=600").header("age", "700"));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;

    assert_cached(&edge, &origin, "/fresh").await;
    // An upstream Age counts: the hit's Age includes it, and the remaining ttl is shorter.
    edge.get("/aged").await;
    let hit = edge.get("/aged").await;
    hit.assert_hit();
    let age: u64 = hit.header("age").unwrap().parse().unwrap();
    assert!(age >= 100, "Age {age}");
    let ttl: i64 = hit.cache_params()["ttl"].parse().unwrap();
    assert!(ttl <= 500, "ttl {ttl}");
    // Age beyond max-age: stale on arrival, so the next request goes to the origin.
    assert_not_reused(&edge, &origin, "/too-old").await;
    edge.shutdown().await;
}

#[tokio::test]
async fn s_maxage_wins_over_max_age() {
    let origin = Origin::start().await;
    origin.set("/shared-longer", Reply::ok("s").cc("max-age=0, s-maxage=600"));
    origin.set("/shared-zero", Reply::ok("z").cc("max-age=600, s-maxage=0"));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    assert_cached(&edge, &origin, "/shared-longer").await;
    assert_not_reused(&edge, &origin, "/shared-zero").await;
    edge.shutdown().await;
}

#[tokio::test]
async fn expires_gives_freshness_and_cache_control_wins_over_it() {
    let origin = Origin::start().await;
    let now = http_date_ago(0);
    origin.set("/future", Reply::ok("f").header("date", &now).header("expires", http_date_ago(-600)));
    origin.set("/past", Reply::ok("p").header("date", &now).header("expires", http_date_ago(600)));
    origin.set("/invalid", Reply::ok("i").header("date", &now).header("expires", "0"));
    let overridden = Reply::ok("o").header("date", &now).header("expires", http_date_ago(600)).cc("max-age=600");
    origin.set("/overridden", overridden);
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    assert_cached(&edge, &origin, "/future").await;
    assert_not_reused(&edge, &origin, "/past").await;
    assert_not_reused(&edge, &origin, "/invalid").await;
    assert_cached(&edge, &origin, "/overridden").await;
    edge.shutdown().await;
}

#[tokio::test]
async fn heuristic_freshness_only_with_last_modified_and_a_heuristically_cacheable_status() {
    let origin = Origin::start().await;
    let ten_days_ago = http_date_ago(10 * 86_400);
    origin.set("/page", Reply::ok("p").header("last-modified", &ten_days_ago));
    origin.set("/gone", Reply::status(404).body("nf").header("last-modified", &ten_days_ago));
    origin.set("/public", Reply::ok("pub").cc("public").header("last-modified", &ten_days_ago));
    // 302 is not heuristically cacheable: not stored, whatever Last-Modified says.
    origin.set("/moved", Reply::status(302).header("location", "/page").header("last-modified", &ten_days_ago));
    // No Last-Modified, no explicit freshness: nothing to base a heuristic on.
    origin.set("/bare", Reply::ok("b"));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;

    assert_cached(&edge, &origin, "/page").await;
    // 10 % of ten days is more than the one-day cap.
    let ttl: i64 = edge.get("/page").await.cache_params()["ttl"].parse().unwrap();
    assert!((86_000..=86_400).contains(&ttl), "heuristic ttl {ttl}");
    assert_cached(&edge, &origin, "/gone").await;
    assert_eq!(edge.get("/gone").await.status, StatusCode::NOT_FOUND);
    assert_cached(&edge, &origin, "/public").await;
    assert_not_reused(&edge, &origin, "/moved").await;
    assert_eq!(edge.get("/moved").await.detail().as_deref(), Some("status"));
    assert_not_reused(&edge, &origin, "/bare").await;
    edge.shutdown().await;
}

#[tokio::test]
async fn pragma_no_cache_counts_only_in_requests_without_cache_control_and_only_when_honoured() {
    let origin = Origin::start().await;
    // A response Pragma is not a directive (RFC 9111 §5.4 defines it for requests).
    origin.set("/resp-pragma", Reply::ok("r").cc("max-age=600").header("pragma", "no-cache"));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    assert_cached(&edge, &origin, "/resp-pragma").await;
    // Client cache directives are ignored by default (S3.1), Pragma included.
    let resp = edge.req(Method::GET, "/resp-pragma").header("pragma", "no-cache").send().await;
    resp.assert_hit();
    edge.shutdown().await;

    let origin = Origin::start().await;
    let edge = EdgeTest::new().origin("a.test", &origin).cache("honor-client-cache-control", "true").start().await;
    edge.get("/p").await.assert_fwd("miss");
    edge.get("/p").await.assert_hit();
    // HTTP/1.0 style: Pragma alone asks for a revalidation.
    let resp = edge.req(Method::GET, "/p").header("pragma", "no-cache").send().await;
    assert!(!resp.is_hit(), "Pragma: no-cache was not honoured: `{}`", resp.cache_status());
    assert_eq!(origin.count("/p"), 2);
    // With Cache-Control present, Pragma is ignored (RFC 9111 §5.4).
    let resp = edge.req(Method::GET, "/p").header("pragma", "no-cache").header("cache-control", "max-age=600").send();
    resp.await.assert_hit();
    assert_eq!(origin.count("/p"), 2);
    edge.shutdown().await;
}
