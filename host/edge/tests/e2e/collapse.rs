//! Collapsed fills (S1.3) and back-pressure (S4.1) through the real proxy: concurrent misses
//! make one origin request and every waiter gets the whole body; a failed fill answers every
//! waiter with an error and never hangs; past `max-waiters`, requests get `503` + `Retry-After`
//! + `edgepurge-busy`, or a stale copy when there is one.
//!
//! Origin replies are held on a [`Gate`] until the edge's metrics show every waiter joined, so
//! the tests do not depend on how fast the machine is.

use http::StatusCode;
use http_body_util::BodyExt;

use crate::support::{EdgeClient, EdgeTest, Gate, Origin, Refusing, Reply, Resp, Running, PATIENCE};

const WAITERS: &str = "edgepurge_fill_waiters_total";

/// Starts `n` concurrent GETs of `path`.
fn spawn_gets(client: &EdgeClient, path: &str, n: usize) -> Vec<tokio::task::JoinHandle<Resp>> {
    (0..n)
        .map(|_| {
            let (client, path) = (client.clone(), path.to_owned());
            tokio::spawn(async move { client.get(&path).await })
        })
        .collect()
}

async fn all(tasks: Vec<tokio::task::JoinHandle<Resp>>) -> Vec<Resp> {
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_misses_make_one_origin_request_and_all_get_the_whole_body() {
    let origin = Origin::start().await;
    let body: String = (0..40_000).map(|i| format!("{:05}\n", i % 100_000)).collect();
    let gate = Gate::new();
    origin.set("/big", Reply::ok(body.clone()).cc("max-age=600").hold(&gate));
    let edge = EdgeTest::new().origin("a.test", &origin).collapse("max-waiters", "100").start().await;

    let tasks = spawn_gets(&edge.client(), "/big", 100);
    edge.wait_metric(WAITERS, 100).await;
    gate.open();
    let answers = all(tasks).await;
    for resp in &answers {
        resp.assert_ok(&body);
    }
    let collapsed = answers.iter().filter(|r| r.cache_params().contains_key("collapsed")).count();
    assert_eq!(collapsed, 99, "every request but the leader's waited on its fill");
    assert_eq!(origin.count("/big"), 1);
    assert_eq!(edge.metric("edgepurge_fills_total").await, 1);
    edge.get("/big").await.assert_hit();
    edge.shutdown().await;
}

/// `n` concurrent requests for `path` while the origin holds its answer, then released.
async fn collapsed_answers(edge: &Running, origin: &Origin, path: &str, reply: Reply, n: usize) -> Vec<Resp> {
    let gate = Gate::new();
    origin.set(path, reply.hold(&gate));
    let before = edge.metric(WAITERS).await;
    let tasks = spawn_gets(&edge.client(), path, n);
    edge.wait_metric(WAITERS, before + n as u64).await;
    gate.open();
    all(tasks).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_fill_answers_every_waiter_with_an_error() {
    let origin = Origin::start().await;
    let edge = EdgeTest::new().origin("a.test", &origin).collapse("max-waiters", "20").start().await;

    // An origin 5xx is not stored: every waiter gets it, and the next request asks again.
    let failing = Reply::status(503).body("origin overloaded").cc("no-store");
    for resp in collapsed_answers(&edge, &origin, "/e503", failing, 20).await {
        assert_eq!((resp.status, resp.text().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "origin overloaded"));
    }
    assert_eq!(origin.count("/e503"), 1);
    assert_eq!(edge.get("/e503").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(origin.count("/e503"), 2);

    // The origin closes the connection without answering: 502 naming the failure, for everyone.
    for resp in collapsed_answers(&edge, &origin, "/dropped", Reply::drop_connection(), 20).await {
        assert_eq!(resp.status, StatusCode::BAD_GATEWAY, "{}", resp.text());
        assert!(resp.text().contains("origin"), "{}", resp.text());
    }
    assert_eq!(origin.count("/dropped"), 1);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refusing_origin_fails_every_concurrent_request_without_hanging() {
    let dead = Refusing::new();
    let edge = EdgeTest::new().origin_url("a.test", &dead.url(), "").collapse("max-waiters", "50").start().await;
    for resp in all(spawn_gets(&edge.client(), "/x", 50)).await {
        assert_eq!(resp.status, StatusCode::BAD_GATEWAY, "{}", resp.text());
    }
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_broken_off_mid_fill_fails_every_waiter_and_is_not_stored() {
    let origin = Origin::start().await;
    let stall = Gate::new();
    let body = "x".repeat(64 * 1024);
    origin.set("/cut", Reply::ok(body.clone()).cc("max-age=600").stall_body(&stall));
    let edge = EdgeTest::new().origin("a.test", &origin).collapse("max-waiters", "20").start().await;
    // Each client reports when the head arrived, then reads the body.
    let (heads, mut arrived) = tokio::sync::mpsc::channel(10);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (client, heads) = (edge.client(), heads.clone());
            tokio::spawn(async move {
                let resp = client.send_streaming(client.req(http::Method::GET, "/cut")).await;
                heads.send(()).await.unwrap();
                let status = resp.status();
                let body = tokio::time::timeout(PATIENCE, resp.into_body().collect()).await.expect("body hung");
                (status, body.map(|b| b.to_bytes()))
            })
        })
        .collect();
    for _ in 0..10 {
        arrived.recv().await.unwrap();
    }
    // The origin's connections break after half the body was sent.
    origin.cut_connections();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_err(), "a truncated body was delivered as complete ({} bytes)", body.unwrap().len());
    }
    // Nothing was stored: the next request goes to the origin again and gets the whole body.
    origin.set("/cut", Reply::ok(body.clone()).cc("max-age=600"));
    edge.get("/cut").await.assert_ok(&body).assert_fwd("miss");
    assert_eq!(origin.count("/cut"), 2);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_max_waiters_requests_get_503_with_retry_after_and_the_busy_key() {
    let origin = Origin::start().await;
    let gate = Gate::new();
    origin.set("/hot", Reply::ok("hot").cc("max-age=600").hold(&gate));
    let edge = EdgeTest::new().origin("a.test", &origin).collapse("max-waiters", "3").start().await;
    let waiting = spawn_gets(&edge.client(), "/hot", 3);
    edge.wait_metric(WAITERS, 3).await;

    for n in 1..=5 {
        let resp = edge.get("/hot").await;
        assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE, "{}", resp.text());
        assert!(resp.header("retry-after").is_some(), "no Retry-After");
        let busy = edge_busy(&resp);
        assert_eq!(busy, "http://a.test/hot");
        assert_eq!(edge.metric("edgepurge_busy_total").await, n);
    }
    gate.open();
    for resp in all(waiting).await {
        resp.assert_ok("hot");
    }
    assert_eq!(origin.count("/hot"), 1);
    edge.get("/hot").await.assert_hit();
    edge.shutdown().await;
}

fn edge_busy(resp: &Resp) -> String {
    resp.header(edgepurge_edge::proxy::BUSY_HEADER).unwrap_or_else(|| panic!("no busy header: {:?}", resp.headers))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_max_waiters_a_stale_copy_is_served_when_there_is_one() {
    let origin = Origin::start().await;
    origin.set("/hot", Reply::ok("stale copy").cc("max-age=1").header("age", "10").header("etag", "\"h1\""));
    let edge = EdgeTest::new().origin("a.test", &origin).collapse("max-waiters", "3").start().await;
    edge.get("/hot").await.assert_ok("stale copy");

    let gate = Gate::new();
    origin.set("/hot", Reply::ok("fresh copy").cc("max-age=600").hold(&gate));
    // The first fill counted one waiter already.
    let before = edge.metric(WAITERS).await;
    let waiting = spawn_gets(&edge.client(), "/hot", 3);
    edge.wait_metric(WAITERS, before + 3).await;
    let resp = edge.get("/hot").await;
    resp.assert_ok("stale copy");
    assert!(resp.is_hit(), "`{}`", resp.cache_status());
    assert_eq!(resp.detail().as_deref(), Some("busy"));
    assert!(resp.header("age").is_some());
    gate.open();
    for resp in all(waiting).await {
        resp.assert_ok("fresh copy");
    }
    edge.shutdown().await;
}

/// Responses stream as they arrive from the origin: the leader and a collapsed waiter both get
/// the first half of the body while the origin still holds the second half, then the rest; the
/// object is stored once complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_to_every_waiter_before_the_origin_finishes() {
    let origin = Origin::start().await;
    let gate = Gate::new();
    let body = "a".repeat(50_000) + &"b".repeat(50_000);
    origin.set("/stream", Reply::ok(body.clone()).cc("max-age=600").stall_body(&gate));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    let mut first = edge.send_streaming(edge.req(http::Method::GET, "/stream")).await;
    let mut second = edge.send_streaming(edge.req(http::Method::GET, "/stream")).await;
    for resp in [&mut first, &mut second] {
        let mut got = 0;
        while got < 50_000 {
            let frame = tokio::time::timeout(PATIENCE, resp.body_mut().frame()).await;
            let frame = frame.expect("the first half did not stream before the origin finished");
            let data = frame.expect("the body ended early").expect("body error").into_data().unwrap_or_default();
            assert!(data.iter().all(|&b| b == b'a'), "bytes of the second half arrived before the origin sent them");
            got += data.len();
        }
    }
    assert_eq!(origin.count("/stream"), 1);
    gate.open();
    for resp in [first, second] {
        let rest = tokio::time::timeout(PATIENCE, resp.into_body().collect()).await.unwrap().unwrap().to_bytes();
        assert_eq!(rest.len(), 50_000);
    }
    edge.get("/stream").await.assert_ok(&body).assert_hit();
    edge.shutdown().await;
}
