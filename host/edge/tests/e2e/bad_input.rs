//! Bad input and bad origins: malformed `Host` → 400, oversized request headers → 431, an origin
//! refusing connections → 502 with a message, an origin slower than `read-timeout-ms` → 504
//! (head) or a broken-off body (mid-body), never a hang; an unknown host → 404.

use http::{Method, StatusCode};
use http_body_util::BodyExt;

use crate::support::{EdgeTest, Gate, Origin, Refusing, Reply, PATIENCE};

/// The status code of a raw HTTP/1.1 answer.
fn status_of(answer: &str) -> u16 {
    let line = answer.lines().next().unwrap_or_default();
    line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

#[tokio::test]
async fn malformed_or_missing_host_is_400() {
    let origin = Origin::start().await;
    let edge = EdgeTest::new().origin("*", &origin).start().await;
    let cases: [(&str, &str); 7] = [
        ("space", "Host: bad host\r\n"),
        ("bad port", "Host: a.test:notaport\r\n"),
        ("port out of range", "Host: a.test:99999\r\n"),
        ("unclosed IPv6 literal", "Host: [::1\r\n"),
        ("userinfo", "Host: user@a.test\r\n"),
        ("two Host headers", "Host: a.test\r\nHost: b.test\r\n"),
        ("no Host", ""),
    ];
    for (what, host) in cases {
        let answer = edge.raw(format!("GET /x HTTP/1.1\r\n{host}Connection: close\r\n\r\n").as_bytes()).await;
        assert_eq!(status_of(&answer), 400, "{what}: {answer}");
    }
    assert_eq!(origin.total(), 0, "a malformed request reached the origin");
    // A well-formed one is served.
    let answer = edge.raw(b"GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    edge.shutdown().await;
}

#[tokio::test]
async fn oversized_request_headers_are_431() {
    let origin = Origin::start().await;
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    let huge =
        format!("GET /x HTTP/1.1\r\nHost: a.test\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "a".repeat(1 << 20));
    let answer = edge.raw(huge.as_bytes()).await;
    assert_eq!(status_of(&answer), 431, "{answer}");
    let many: String = (0..500).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let answer =
        edge.raw(format!("GET /x HTTP/1.1\r\nHost: a.test\r\n{many}Connection: close\r\n\r\n").as_bytes()).await;
    assert_eq!(status_of(&answer), 431, "{answer}");
    assert_eq!(origin.total(), 0);
    // The edge still serves normal requests.
    edge.get("/x").await.assert_ok("body of /x");
    edge.shutdown().await;
}

#[tokio::test]
async fn an_origin_refusing_connections_is_502_naming_the_origin() {
    let dead = Refusing::new();
    let edge = EdgeTest::new().origin_url("a.test", &dead.url(), "connect-timeout-ms = 5000").start().await;
    for method in [Method::GET, Method::POST] {
        let resp = edge.req(method.clone(), "/x").send().await;
        assert_eq!(resp.status, StatusCode::BAD_GATEWAY, "{method}");
        let text = resp.text();
        assert!(text.contains(&dead.url()) && text.to_lowercase().contains("refused"), "{method}: {text}");
    }
    edge.shutdown().await;
}

#[tokio::test]
async fn an_origin_slower_than_the_read_timeout_is_504() {
    let origin = Origin::start().await;
    let never = Gate::new();
    origin.set("/slow", Reply::ok("too late").cc("max-age=600").hold(&never));
    let edge = EdgeTest::new().origin_url("a.test", &origin.url(), "read-timeout-ms = 300").start().await;
    for method in [Method::GET, Method::HEAD, Method::POST] {
        let resp = edge.req(method.clone(), "/slow").send().await;
        assert_eq!(resp.status, StatusCode::GATEWAY_TIMEOUT, "{method}: {}", resp.text());
    }
    never.open();
    edge.shutdown().await;
}

#[tokio::test]
async fn an_origin_stalling_mid_body_breaks_the_answer_off_without_hanging() {
    let origin = Origin::start().await;
    let never = Gate::new();
    origin.set("/stall", Reply::ok("x".repeat(10_000)).cc("max-age=600").stall_body(&never));
    let edge = EdgeTest::new().origin_url("a.test", &origin.url(), "read-timeout-ms = 300").start().await;
    let resp = edge.send_streaming(edge.req(Method::GET, "/stall")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = tokio::time::timeout(PATIENCE, resp.into_body().collect()).await.expect("the body hung");
    assert!(body.is_err(), "a broken-off body was delivered as complete");
    // Not stored: the next request goes to the origin.
    origin.set("/stall", Reply::ok("whole").cc("max-age=600"));
    edge.get("/stall").await.assert_ok("whole").assert_fwd("miss");
    never.open();
    edge.shutdown().await;
}

#[tokio::test]
async fn an_unknown_host_is_404_naming_it() {
    let origin = Origin::start().await;
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    let resp = edge.req(Method::GET, "/x").host("elsewhere.test").send().await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert!(resp.text().contains("elsewhere.test"), "{}", resp.text());
    assert_eq!(origin.total(), 0);
    edge.shutdown().await;
}
