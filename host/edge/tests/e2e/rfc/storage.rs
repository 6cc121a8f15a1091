//! What is stored and reused (RFC 9111 §3, §4.4, §3.5): `no-store` / `private`, requests with
//! `Authorization`, HEAD from a stored GET, invalidation by unsafe methods, and hop-by-hop
//! headers in both directions.

use http::{Method, StatusCode};

use crate::support::{EdgeTest, Origin, Reply};

#[tokio::test]
async fn no_store_and_private_responses_are_not_stored() {
    let origin = Origin::start().await;
    origin.set("/no-store", Reply::ok("ns").cc("no-store, max-age=600"));
    origin.set("/private", Reply::ok("pv").cc("private, max-age=600"));
    origin.set("/private-field", Reply::ok("pf").cc("max-age=600, private=\"x-user\"").header("x-user", "alice"));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    for (path, detail) in [("/no-store", "no-store"), ("/private", "private"), ("/private-field", "private")] {
        let first = edge.get(path).await;
        assert_eq!(first.detail().as_deref(), Some(detail), "{path}: `{}`", first.cache_status());
        assert!(!first.cache_params().contains_key("stored"), "{path}: `{}`", first.cache_status());
        let second = edge.get(path).await;
        assert!(!second.is_hit(), "{path}: `{}`", second.cache_status());
        assert_eq!(origin.count(path), 2, "{path}");
    }
    edge.shutdown().await;
}

#[tokio::test]
async fn authorization_responses_are_stored_only_with_s_maxage_public_or_must_revalidate() {
    let origin = Origin::start().await;
    origin.set("/plain", Reply::ok("p").cc("max-age=600"));
    origin.set("/s-maxage", Reply::ok("s").cc("s-maxage=600"));
    origin.set("/public", Reply::ok("u").cc("public, max-age=600"));
    origin.set("/must-revalidate", Reply::ok("m").cc("must-revalidate, max-age=600"));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    let authed = |path: &str| edge.req(Method::GET, path).header("authorization", "Bearer secret").send();

    let first = authed("/plain").await;
    assert_eq!(first.detail().as_deref(), Some("authorization"), "`{}`", first.cache_status());
    assert!(!authed("/plain").await.is_hit());
    assert!(!edge.get("/plain").await.is_hit(), "a response to an authorized request was shared");
    assert_eq!(origin.count("/plain"), 3);
    for path in ["/s-maxage", "/public", "/must-revalidate"] {
        authed(path).await.assert_fwd("miss");
        authed(path).await.assert_hit();
        assert_eq!(origin.count(path), 1, "{path}");
    }
    edge.shutdown().await;
}

#[tokio::test]
async fn head_is_answered_from_a_stored_get_and_a_head_miss_fills_with_get() {
    let origin = Origin::start().await;
    origin.set("/doc", Reply::ok("the document").cc("max-age=600").header("etag", "\"d1\""));
    origin.set("/other", Reply::ok("other document").cc("max-age=600"));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;

    let get = edge.get("/doc").await;
    get.assert_ok("the document");
    let head = edge.head("/doc").await;
    assert_eq!(head.status, StatusCode::OK);
    head.assert_hit();
    assert!(head.body.is_empty(), "a HEAD answer with a body");
    for name in ["content-length", "etag", "cache-control"] {
        assert_eq!(head.header(name), get.header(name), "{name} differs between HEAD and GET");
    }
    assert_eq!(origin.count("/doc"), 1);

    // A HEAD miss fetches with GET (so the object is complete), answers without a body, and the
    // next GET is a hit with the whole body.
    let head = edge.head("/other").await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(origin.last("/other").method, Method::GET);
    edge.get("/other").await.assert_ok("other document").assert_hit();
    assert_eq!(origin.count("/other"), 1);
    edge.shutdown().await;
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_target_and_same_host_locations() {
    let origin = Origin::start().await;
    let edge = EdgeTest::new().origin("a.test", &origin).origin("b.test", &origin).start().await;
    let b = |path: &str| edge.req(Method::GET, path).host("b.test").send();
    for path in ["/items", "/items/42", "/items/7", "/unrelated"] {
        edge.get(path).await;
        edge.get(path).await.assert_hit();
    }
    b("/items/9").await;
    b("/items/9").await.assert_hit();

    // 201 with Location (same host) and Content-Location on another host.
    origin.set(
        "/items",
        Reply::status(201).header("location", "/items/42").header("content-location", "http://b.test/items/9"),
    );
    let post = edge.req(Method::POST, "/items").body("new").send().await;
    assert_eq!(post.status, StatusCode::CREATED);
    post.assert_fwd("method");
    origin.set("/items", Reply::ok("list").cc("max-age=600"));
    edge.get("/items").await.assert_ok("list").assert_fwd("miss");
    edge.get("/items/42").await.assert_fwd("miss");
    b("/items/9").await.assert_hit();
    edge.get("/items/7").await.assert_hit();
    edge.get("/unrelated").await.assert_hit();

    // PUT and DELETE invalidate their target; a failed unsafe request invalidates nothing.
    let put = edge.req(Method::PUT, "/items/7").body("x").send().await;
    assert_eq!(put.status, StatusCode::OK);
    edge.get("/items/7").await.assert_fwd("miss");
    origin.set("/unrelated", Reply::status(500).body("broken"));
    let delete = edge.req(Method::DELETE, "/unrelated").send().await;
    assert_eq!(delete.status, StatusCode::INTERNAL_SERVER_ERROR);
    edge.get("/unrelated").await.assert_ok("body of /unrelated").assert_hit();
    edge.shutdown().await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded_either_way() {
    let origin = Origin::start().await;
    origin.set(
        "/h",
        Reply::ok("h")
            .cc("max-age=600")
            .header("connection", "x-internal")
            .header("x-internal", "origin-only")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic")
            .header("x-end-to-end", "kept"),
    );
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    let resp = edge
        .req(Method::GET, "/h")
        .header("connection", "x-secret")
        .header("x-secret", "client-only")
        .header("proxy-authorization", "Basic eA==")
        .header("te", "trailers")
        .header("x-request-end-to-end", "kept")
        .send()
        .await;
    let sent = origin.last("/h");
    for name in ["x-secret", "proxy-authorization", "te"] {
        assert_eq!(sent.header(name), None, "{name} reached the origin");
    }
    assert_eq!(sent.header("x-request-end-to-end").as_deref(), Some("kept"));
    // On the miss (streamed from the fill) and on the hit (from the store).
    let hit = edge.get("/h").await;
    hit.assert_hit();
    for resp in [&resp, &hit] {
        for name in ["x-internal", "keep-alive", "proxy-authenticate"] {
            assert_eq!(resp.header(name), None, "{name} reached the client: `{}`", resp.cache_status());
        }
        assert_eq!(resp.header("x-end-to-end").as_deref(), Some("kept"));
    }
    edge.shutdown().await;
}
