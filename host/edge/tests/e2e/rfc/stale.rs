//! Serving stale (RFC 5861, RFC 9111 §4.2.4): `stale-while-revalidate` answers at once while
//! exactly one background refresh runs; `stale-if-error` answers an origin error, a dropped
//! connection or a refusing origin with the stale copy; `must-revalidate` forbids both.

use http::StatusCode;

use crate::support::{EdgeTest, Gate, Origin, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_while_revalidate_answers_at_once_and_refreshes_exactly_once() {
    let origin = Origin::start().await;
    // Stale on arrival (Age 10 > max-age 1), well within the revalidation window.
    origin.set("/swr", Reply::ok("old").cc("max-age=1, stale-while-revalidate=600").header("age", "10"));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    edge.get("/swr").await.assert_ok("old");

    // The refresh is held at the origin until every stale answer is in: they cannot have
    // waited for it.
    let gate = Gate::new();
    origin.set("/swr", Reply::ok("new").cc("max-age=600").hold(&gate));
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let client = edge.client();
            tokio::spawn(async move { client.get("/swr").await })
        })
        .collect();
    for client in clients {
        let resp = client.await.unwrap();
        resp.assert_ok("old");
        assert!(resp.is_hit(), "`{}`", resp.cache_status());
        assert_eq!(resp.detail().as_deref(), Some("stale-while-revalidate"));
    }
    origin.wait_count("/swr", 2).await;
    gate.open();
    // Once the refresh is stored, the new body is a plain hit.
    let deadline = tokio::time::Instant::now() + crate::support::PATIENCE;
    loop {
        let resp = edge.get("/swr").await;
        if resp.text() == "new" {
            resp.assert_hit();
            break;
        }
        assert_eq!(resp.detail().as_deref(), Some("stale-while-revalidate"));
        assert!(tokio::time::Instant::now() < deadline, "the background refresh never landed");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(origin.count("/swr"), 2, "more than one background refresh");
    edge.shutdown().await;
}

#[tokio::test]
async fn stale_if_error_answers_origin_failures_with_the_stale_copy() {
    let origin = Origin::start().await;
    let cached = || Reply::ok("stale but useful").cc("max-age=1, stale-if-error=600").header("age", "10");
    for path in ["/e500", "/drop", "/down"] {
        origin.set(path, cached());
    }
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    for path in ["/e500", "/drop", "/down"] {
        edge.get(path).await.assert_ok("stale but useful");
    }

    origin.set("/e500", Reply::status(500).body("origin broke"));
    let resp = edge.get("/e500").await;
    resp.assert_ok("stale but useful").assert_fwd("stale");
    assert_eq!(resp.detail().as_deref(), Some("stale-if-error"), "`{}`", resp.cache_status());
    assert_eq!(resp.cache_params().get("fwd-status").map(String::as_str), Some("500"));

    origin.set("/drop", Reply::drop_connection());
    let resp = edge.get("/drop").await;
    resp.assert_ok("stale but useful");
    assert_eq!(resp.detail().as_deref(), Some("stale-if-error"), "`{}`", resp.cache_status());

    // The origin goes away entirely: connections are refused.
    origin.stop();
    let resp = edge.get("/down").await;
    resp.assert_ok("stale but useful");
    assert_eq!(resp.detail().as_deref(), Some("stale-if-error"), "`{}`", resp.cache_status());
    edge.shutdown().await;
}

#[tokio::test]
async fn without_stale_if_error_an_origin_failure_is_an_error() {
    let origin = Origin::start().await;
    origin.set("/plain", Reply::ok("cached").cc("max-age=1").header("age", "10"));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    edge.get("/plain").await.assert_ok("cached");
    origin.set("/plain", Reply::status(500).body("origin broke"));
    let resp = edge.get("/plain").await;
    assert_eq!((resp.status, resp.text().as_str()), (StatusCode::INTERNAL_SERVER_ERROR, "origin broke"));
    edge.shutdown().await;
}

#[tokio::test]
async fn must_revalidate_forbids_serving_stale_even_with_stale_directives() {
    let origin = Origin::start().await;
    let cc = "max-age=1, must-revalidate, stale-if-error=600, stale-while-revalidate=600";
    // With a validator, so the stale object is kept for revalidation.
    origin.set("/strict", Reply::ok("strict").cc(cc).header("age", "10").header("etag", "\"s1\""));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    edge.get("/strict").await.assert_ok("strict");

    // No stale-while-revalidate: the request waits for the origin.
    origin.set("/strict", Reply::ok("strict v2").cc(cc).header("age", "10").header("etag", "\"s2\""));
    edge.get("/strict").await.assert_ok("strict v2").assert_fwd("stale");

    // No stale-if-error: the origin's failure reaches the client.
    origin.set("/strict", Reply::status(500).body("origin broke"));
    let resp = edge.get("/strict").await;
    // The origin's own error is relayed (RFC 9111 §4.3.3), not replaced by a 502.
    assert_eq!((resp.status, resp.text().as_str()), (StatusCode::INTERNAL_SERVER_ERROR, "origin broke"));
    origin.stop();
    let resp = edge.get("/strict").await;
    assert_eq!(resp.status, StatusCode::BAD_GATEWAY, "`{}`", resp.cache_status());
    edge.shutdown().await;
}
