//! Validation (RFC 9111 §4.3) and `Vary` (§4.1): a stale entry is revalidated with the stored
//! validators, a `304` refreshes the stored headers and keeps the body; `no-cache` responses are
//! revalidated on every use; each `Vary` variant is its own object and `Vary: *` never matches.

use http::Method;

use crate::support::{http_date_ago, EdgeTest, Origin, Reply};

#[tokio::test]
async fn a_stale_entry_is_revalidated_and_a_304_updates_headers_but_keeps_the_body() {
    let origin = Origin::start().await;
    let modified = http_date_ago(3600);
    let v1 = Reply::ok("original body")
        .cc("max-age=60")
        .header("age", "120")
        .header("etag", "\"v1\"")
        .header("last-modified", &modified)
        .header("x-version", "1");
    origin.set("/doc", v1);
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    edge.get("/doc").await.assert_ok("original body").assert_fwd("miss");

    // The origin confirms v1 with new metadata (and would send another body on a full fetch).
    let v2 = Reply::ok("a body that must not be served")
        .cc("max-age=600")
        .header("etag", "\"v1\"")
        .header("last-modified", &modified)
        .header("x-version", "2")
        .conditional();
    origin.set("/doc", v2);
    let revalidated = edge.get("/doc").await;
    revalidated.assert_ok("original body").assert_fwd("stale");
    assert_eq!(revalidated.cache_params().get("fwd-status").map(String::as_str), Some("304"));
    assert_eq!(revalidated.header("x-version").as_deref(), Some("2"));
    let sent = origin.last("/doc");
    assert_eq!(sent.header("if-none-match").as_deref(), Some("\"v1\""));
    assert_eq!(sent.header("if-modified-since"), Some(modified.clone()));

    // The merged entry is fresh again: a hit with the new headers and the old body.
    let hit = edge.get("/doc").await;
    hit.assert_ok("original body").assert_hit();
    assert_eq!(hit.header("x-version").as_deref(), Some("2"));
    assert_eq!(hit.header("content-length").as_deref(), Some("13"));
    assert_eq!(origin.count("/doc"), 2);
    edge.shutdown().await;
}

#[tokio::test]
async fn last_modified_alone_is_revalidated_with_if_modified_since() {
    let origin = Origin::start().await;
    let modified = http_date_ago(7200);
    let reply = Reply::ok("dated").cc("max-age=60").header("age", "120").header("last-modified", &modified);
    origin.set("/dated", reply.clone());
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    edge.get("/dated").await;
    origin.set("/dated", reply.conditional());
    edge.get("/dated").await.assert_ok("dated").assert_fwd("stale");
    let sent = origin.last("/dated");
    assert_eq!(sent.header("if-modified-since"), Some(modified));
    assert_eq!(sent.header("if-none-match"), None);
    edge.shutdown().await;
}

#[tokio::test]
async fn a_changed_resource_replaces_the_stored_one() {
    let origin = Origin::start().await;
    origin.set("/doc", Reply::ok("v1").cc("max-age=60").header("age", "120").header("etag", "\"v1\""));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    edge.get("/doc").await.assert_ok("v1");
    origin.set("/doc", Reply::ok("v2").cc("max-age=600").header("etag", "\"v2\"").conditional());
    edge.get("/doc").await.assert_ok("v2").assert_fwd("stale");
    assert_eq!(origin.last("/doc").header("if-none-match").as_deref(), Some("\"v1\""));
    edge.get("/doc").await.assert_ok("v2").assert_hit();
    edge.shutdown().await;
}

#[tokio::test]
async fn a_client_conditional_request_is_answered_304_from_a_hit() {
    let origin = Origin::start().await;
    let modified = http_date_ago(3600);
    origin
        .set("/doc", Reply::ok("doc").cc("max-age=600").header("etag", "W/\"d1\"").header("last-modified", &modified));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    edge.get("/doc").await.assert_ok("doc");
    let inm = edge.req(Method::GET, "/doc").header("if-none-match", "\"other\", W/\"d1\"").send().await;
    assert_eq!(inm.status, http::StatusCode::NOT_MODIFIED);
    assert!(inm.body.is_empty());
    inm.assert_hit();
    assert_eq!(inm.header("etag").as_deref(), Some("W/\"d1\""));
    let ims = edge.req(Method::GET, "/doc").header("if-modified-since", &http_date_ago(0)).send().await;
    assert_eq!(ims.status, http::StatusCode::NOT_MODIFIED);
    // A validator that does not match gets the whole response.
    let other = edge.req(Method::GET, "/doc").header("if-none-match", "\"other\"").send().await;
    other.assert_ok("doc").assert_hit();
    assert_eq!(origin.count("/doc"), 1);
    edge.shutdown().await;
}

#[tokio::test]
async fn no_cache_responses_are_revalidated_on_every_use() {
    let origin = Origin::start().await;
    origin.set("/nc", Reply::ok("checked").cc("no-cache").header("etag", "\"n1\"").conditional());
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    edge.get("/nc").await.assert_ok("checked");
    for round in 2..=4 {
        let resp = edge.get("/nc").await;
        resp.assert_ok("checked").assert_fwd("stale");
        assert_eq!(resp.cache_params().get("fwd-status").map(String::as_str), Some("304"), "round {round}");
        assert_eq!(origin.count("/nc"), round);
        assert_eq!(origin.last("/nc").header("if-none-match").as_deref(), Some("\"n1\""));
    }
    edge.shutdown().await;
}

#[tokio::test]
async fn each_vary_variant_is_its_own_object() {
    let origin = Origin::start().await;
    origin.set_fn("/v", |req| {
        let encoding = req.header("accept-encoding").unwrap_or_else(|| "none".into());
        Reply::ok(format!("encoded as {encoding}")).cc("max-age=600").header("vary", "Accept-Encoding")
    });
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    let get = |encoding: Option<&'static str>| {
        let req = edge.req(Method::GET, "/v");
        match encoding {
            Some(e) => req.header("accept-encoding", e).send(),
            None => req.send(),
        }
    };
    get(Some("gzip")).await.assert_ok("encoded as gzip");
    get(Some("br")).await.assert_ok("encoded as br");
    get(None).await.assert_ok("encoded as none");
    assert_eq!(origin.count("/v"), 3);
    for round in 0..2 {
        get(Some("gzip")).await.assert_ok("encoded as gzip").assert_hit();
        get(Some("br")).await.assert_ok("encoded as br").assert_hit();
        get(None).await.assert_ok("encoded as none").assert_hit();
        assert_eq!(origin.count("/v"), 3, "round {round}");
    }
    // A forwarded header must reach the origin on a miss: the variant is chosen by it.
    get(Some("deflate")).await.assert_ok("encoded as deflate");
    assert_eq!(origin.last("/v").header("accept-encoding").as_deref(), Some("deflate"));
    edge.shutdown().await;
}

#[tokio::test]
async fn the_variant_without_the_varying_header_survives_other_variants_fills() {
    let origin = Origin::start().await;
    origin.set_fn("/v", |req| {
        let encoding = req.header("accept-encoding").unwrap_or_else(|| "none".into());
        Reply::ok(format!("encoded as {encoding}")).cc("max-age=600").header("vary", "Accept-Encoding")
    });
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    let gzip = || edge.req(Method::GET, "/v").header("accept-encoding", "gzip").send();
    edge.get("/v").await.assert_ok("encoded as none");
    gzip().await.assert_ok("encoded as gzip");
    // Storing the gzip variant must not evict the one for requests without Accept-Encoding.
    edge.get("/v").await.assert_ok("encoded as none").assert_hit();
    gzip().await.assert_ok("encoded as gzip").assert_hit();
    assert_eq!(origin.count("/v"), 2);
    edge.shutdown().await;
}

#[tokio::test]
async fn vary_star_never_matches() {
    let origin = Origin::start().await;
    origin.set("/star", Reply::ok("*").cc("max-age=600").header("vary", "*"));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    let first = edge.get("/star").await;
    assert_eq!(first.detail().as_deref(), Some("vary-star"), "`{}`", first.cache_status());
    for n in 2..=3 {
        assert!(!edge.get("/star").await.is_hit());
        assert_eq!(origin.count("/star"), n);
    }
    edge.shutdown().await;
}
