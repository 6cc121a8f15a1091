//! `Range` requests (RFC 9110 §14): answered `206` from a complete stored object, and cut from
//! the stream of a fill when the origin states the length; `If-Range` and unsatisfiable ranges;
//! the origin is never asked for a range by a cacheable request.

use http::{Method, StatusCode};

use crate::support::{EdgeTest, Origin, Reply};

const BODY: &str = "0123456789abcdefghij";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_are_cut_from_the_fill_and_from_the_stored_object() {
    let origin = Origin::start().await;
    origin.set("/r", Reply::ok(BODY).cc("max-age=600").header("etag", "\"v1\""));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;

    // A miss with a Range: the whole object is fetched (no Range to the origin) and stored,
    // the client gets its 206 cut from the stream.
    let resp = edge.req(Method::GET, "/r").header("range", "bytes=2-5").send().await;
    assert_eq!(resp.status, StatusCode::PARTIAL_CONTENT, "{}", resp.cache_status());
    assert_eq!(resp.text(), "2345");
    assert_eq!(resp.header("content-range").as_deref(), Some("bytes 2-5/20"));
    resp.assert_fwd("miss");
    assert_eq!(origin.last("/r").header("range"), None, "the fill must fetch the whole object");

    // From the stored object: every single-range form.
    for (range, body, content_range) in [
        ("bytes=0-0", "0", "bytes 0-0/20"),
        ("bytes=15-", "fghij", "bytes 15-19/20"),
        ("bytes=-3", "hij", "bytes 17-19/20"),
        ("bytes=18-100", "ij", "bytes 18-19/20"),
    ] {
        let resp = edge.req(Method::GET, "/r").header("range", range).send().await;
        assert_eq!(resp.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert!(resp.is_hit(), "{range}: {}", resp.cache_status());
        assert_eq!((resp.text().as_str(), resp.header("content-range").as_deref()), (body, Some(content_range)));
        assert_eq!(resp.header("content-length"), Some(body.len().to_string()), "{range}");
    }
    assert_eq!(origin.count("/r"), 1);

    // Unsatisfiable: 416 with the length. Several ranges or another unit: the whole 200.
    let resp = edge.req(Method::GET, "/r").header("range", "bytes=20-").send().await;
    assert_eq!(resp.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(resp.header("content-range").as_deref(), Some("bytes */20"));
    for range in ["bytes=0-1,4-5", "items=0-1"] {
        let resp = edge.req(Method::GET, "/r").header("range", range).send().await;
        resp.assert_ok(BODY);
    }

    // If-Range: the stored ETag → 206; another validator → the whole 200.
    let resp = edge.req(Method::GET, "/r").header("range", "bytes=0-1").header("if-range", "\"v1\"").send().await;
    assert_eq!((resp.status, resp.text().as_str()), (StatusCode::PARTIAL_CONTENT, "01"));
    let resp = edge.req(Method::GET, "/r").header("range", "bytes=0-1").header("if-range", "\"v0\"").send().await;
    resp.assert_ok(BODY);

    // HEAD with a Range: the head only.
    let resp = edge.req(Method::HEAD, "/r").header("range", "bytes=0-1").send().await;
    assert!(resp.body.is_empty());
    assert_eq!(origin.count("/r"), 1);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collapsed_waiters_each_get_their_own_range_of_one_fill() {
    let origin = Origin::start().await;
    let gate = crate::support::Gate::new();
    let reply = Reply::ok(BODY).cc("max-age=600").header("content-length", "20").stall_body(&gate);
    origin.set("/big", reply);
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    let ranges = [("bytes=0-3", "0123"), ("bytes=12-15", "cdef"), ("bytes=-2", "ij")];
    let tasks: Vec<_> = ranges
        .iter()
        .map(|(range, _)| {
            let client = edge.client();
            let range = range.to_string();
            tokio::spawn(async move { client.req(Method::GET, "/big").header("range", &range).send().await })
        })
        .collect();
    origin.wait_count("/big", 1).await;
    gate.open();
    for (task, (range, body)) in tasks.into_iter().zip(ranges) {
        let resp = task.await.unwrap();
        assert_eq!((resp.status, resp.text().as_str()), (StatusCode::PARTIAL_CONTENT, body), "{range}");
    }
    assert_eq!(origin.count("/big"), 1);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncacheable_range_request_passes_through_to_the_origin() {
    let origin = Origin::start().await;
    origin.set_fn("/p", |req| match req.header("range") {
        Some(_) => Reply::status(206).header("content-range", "bytes 0-1/20").body("01"),
        None => Reply::ok(BODY),
    });
    let edge = EdgeTest::new().origin("a.test", &origin).cache("query-mode", "\"bypass\"").start().await;
    let resp = edge.req(Method::GET, "/p?x=1").header("range", "bytes=0-1").send().await;
    assert_eq!((resp.status, resp.text().as_str()), (StatusCode::PARTIAL_CONTENT, "01"));
    assert_eq!(origin.last("/p?x=1").header("range").as_deref(), Some("bytes=0-1"));
    edge.shutdown().await;
}
