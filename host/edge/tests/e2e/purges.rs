//! Purges through the admin listener, every scope × mode, checked through the proxy: a hard
//! purge makes the next request a miss; a soft purge keeps the object but stale, so it is
//! revalidated with a conditional request (or served under stale-while-revalidate /
//! stale-if-error); unrelated objects stay hits. Bad tasks are refused and purge nothing.

use http::{Method, StatusCode};

use crate::support::{EdgeTest, Origin, Reply, Resp, Running};

/// The objects every scope test stores: `(host, path)`.
const OBJECTS: [(&str, &str); 5] =
    [("a.test", "/abc"), ("a.test", "/ab"), ("a.test", "/a"), ("a.test", "/b"), ("b.test", "/abc")];

/// An origin whose every path answers with an `ETag` (and `304` to a matching conditional);
/// on host a.test, `/abc` is tagged by `Surrogate-Key` and `/ab` by `Cache-Tag`.
async fn tagged_origin(cache_control: &'static str) -> Origin {
    let origin = Origin::start().await;
    origin.set_fn("*", move |req| {
        let path = req.path_and_query.clone();
        let reply = Reply::ok(format!("body of {path}")).cc(cache_control).header("etag", format!("\"{path}\""));
        let reply = match (req.header("host").as_deref(), path.as_str()) {
            (Some("a.test"), "/abc") => reply.header("surrogate-key", "sk-abc shared"),
            (Some("a.test"), "/ab") => reply.header("cache-tag", "ct-ab, shared-too"),
            _ => reply,
        };
        reply.conditional()
    });
    origin
}

async fn fetch(edge: &Running, host: &str, path: &str) -> Resp {
    edge.req(Method::GET, path).host(host).send().await
}

/// Starts an edge for a.test and b.test and stores every object.
async fn stored(origin: &Origin) -> Running {
    let edge = EdgeTest::new().origin("a.test", origin).origin("b.test", origin).start().await;
    for (host, path) in OBJECTS {
        fetch(&edge, host, path).await.assert_fwd("miss");
        fetch(&edge, host, path).await.assert_hit();
    }
    edge
}

/// Applies `kind target` in both modes (each on a fresh edge) and checks which objects went.
async fn check_scope(kind: &str, target: &str, purged: &[(&str, &str)]) {
    for soft in [false, true] {
        let origin = tagged_origin("max-age=600").await;
        let edge = stored(&origin).await;
        let report = edge.purge_ok(kind, target, soft).await;
        let mode = if soft { "soft" } else { "hard" };
        let series = format!("edgepurge_purges_total{{scope=\"{kind}\",mode=\"{mode}\"}}");
        assert_eq!(edge.metric(&series).await, 1, "{report}");
        for (host, path) in OBJECTS {
            let resp = fetch(&edge, host, path).await;
            let what = format!("{mode} {kind} {target}: {host}{path}");
            resp.assert_ok(&format!("body of {path}"));
            if !purged.contains(&(host, path)) {
                assert!(resp.is_hit(), "{what} was purged: `{}`", resp.cache_status());
                continue;
            }
            let conditional = origin.last(path).header("if-none-match");
            if soft {
                // Kept but stale: revalidated with its validator, confirmed by a 304.
                resp.assert_fwd("stale");
                assert_eq!(resp.cache_params().get("fwd-status").map(String::as_str), Some("304"), "{what}");
                assert_eq!(conditional, Some(format!("\"{path}\"")), "{what}");
            } else {
                resp.assert_fwd("miss");
                assert_eq!(conditional, None, "{what}: a hard-purged object was revalidated");
            }
            fetch(&edge, host, path).await.assert_hit();
        }
        edge.shutdown().await;
    }
}

#[tokio::test]
async fn url_purges_one_url() {
    check_scope("url", "http://a.test/abc", &[("a.test", "/abc")]).await;
}

#[tokio::test]
async fn prefix_purges_any_string_prefix_not_only_directories() {
    check_scope("prefix", "http://a.test/ab", &[("a.test", "/abc"), ("a.test", "/ab")]).await;
}

#[tokio::test]
async fn tag_purges_surrogate_key_tags() {
    check_scope("tag", "sk-abc", &[("a.test", "/abc")]).await;
}

#[tokio::test]
async fn tag_purges_cache_tag_tags() {
    check_scope("tag", "ct-ab", &[("a.test", "/ab")]).await;
}

#[tokio::test]
async fn host_purges_one_host() {
    check_scope("host", "a.test", &[("a.test", "/abc"), ("a.test", "/ab"), ("a.test", "/a"), ("a.test", "/b")]).await;
}

#[tokio::test]
async fn everything_purges_every_host() {
    check_scope("everything", "", &OBJECTS).await;
}

#[tokio::test]
async fn a_url_purge_removes_every_vary_variant() {
    let origin = Origin::start().await;
    origin.set_fn("/v", |req| {
        let lang = req.header("accept-language").unwrap_or_default();
        Reply::ok(format!("in {lang}")).cc("max-age=600").header("vary", "Accept-Language")
    });
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    let get = |lang: &str| edge.req(Method::GET, "/v").header("accept-language", lang).send();
    for lang in ["en", "fr", "de"] {
        get(lang).await;
        get(lang).await.assert_ok(&format!("in {lang}")).assert_hit();
    }
    edge.purge_ok("url", "http://a.test/v", false).await;
    for lang in ["en", "fr", "de"] {
        get(lang).await.assert_ok(&format!("in {lang}")).assert_fwd("miss");
    }
    assert_eq!(origin.count("/v"), 6);
    edge.shutdown().await;
}

#[tokio::test]
async fn soft_purged_objects_are_served_under_stale_while_revalidate() {
    let origin = tagged_origin("max-age=600, stale-while-revalidate=600").await;
    let edge = stored(&origin).await;
    edge.purge_ok("tag", "shared", true).await;
    let resp = fetch(&edge, "a.test", "/abc").await;
    resp.assert_ok("body of /abc");
    assert!(resp.is_hit(), "`{}`", resp.cache_status());
    assert_eq!(resp.detail().as_deref(), Some("stale-while-revalidate"));
    // One background revalidation, conditional; afterwards a plain hit. (b.test/abc made the
    // origin's first /abc request besides a.test's.)
    origin.wait_count("/abc", 3).await;
    assert_eq!(origin.last("/abc").header("if-none-match").as_deref(), Some("\"/abc\""));
    let deadline = tokio::time::Instant::now() + crate::support::PATIENCE;
    while fetch(&edge, "a.test", "/abc").await.detail().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the revalidation never landed");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    fetch(&edge, "a.test", "/abc").await.assert_hit();
    assert_eq!(origin.count("/abc"), 3);
    edge.shutdown().await;
}

#[tokio::test]
async fn soft_purged_objects_are_served_under_stale_if_error_and_hard_purged_ones_are_not() {
    let origin = tagged_origin("max-age=600, stale-if-error=600").await;
    let edge = stored(&origin).await;
    edge.purge_ok("url", "http://a.test/abc", true).await;
    edge.purge_ok("url", "http://a.test/ab", false).await;
    origin.set_fn("*", |_| Reply::status(500).body("origin broke"));
    let soft = fetch(&edge, "a.test", "/abc").await;
    soft.assert_ok("body of /abc");
    assert_eq!(soft.detail().as_deref(), Some("stale-if-error"), "`{}`", soft.cache_status());
    let hard = fetch(&edge, "a.test", "/ab").await;
    assert_eq!((hard.status, hard.text().as_str()), (StatusCode::INTERNAL_SERVER_ERROR, "origin broke"));
    // Unpurged objects are still fresh hits: the origin is not asked.
    fetch(&edge, "a.test", "/a").await.assert_ok("body of /a").assert_hit();
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_fetched_across_a_purge_is_delivered_but_not_stored() {
    let origin = Origin::start().await;
    let gate = crate::support::Gate::new();
    origin.set("/racing", Reply::ok("fetched before the purge").cc("max-age=600").hold(&gate));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    let client = edge.client();
    let waiting = tokio::spawn(async move { client.get("/racing").await });
    origin.wait_count("/racing", 1).await;
    edge.purge_ok("prefix", "http://a.test/rac", false).await;
    gate.open();
    waiting.await.unwrap().assert_ok("fetched before the purge");
    // The purge came after the fetch began: what it fetched may be outdated, so it is not kept.
    origin.set("/racing", Reply::ok("fetched after the purge").cc("max-age=600"));
    edge.get("/racing").await.assert_ok("fetched after the purge").assert_fwd("miss");
    edge.get("/racing").await.assert_ok("fetched after the purge").assert_hit();
    edge.shutdown().await;
}

#[tokio::test]
async fn bad_tasks_are_refused_naming_the_problem_and_purge_nothing() {
    let origin = tagged_origin("max-age=600").await;
    let edge = stored(&origin).await;
    let cases = [
        ("not json at all", "invalid task JSON"),
        (r#"{"id": 1, "kind": "bogus", "target": "x"}"#, "bogus"),
        (r#"{"id": 1, "kind": "url", "target": "http://a.test/a", "colour": "red"}"#, "colour"),
        (
            r#"{"id": 1, "kind": "url", "target": "http://a.test/a", "soft": "yes"}"#,
            "at `soft`: invalid type: string \"yes\", expected a boolean",
        ),
        (r#"{"id": 1, "kind": "url", "target": "/relative"}"#, "/relative"),
        (r#"{"id": 1, "kind": "url", "target": "ftp://a.test/a"}"#, "ftp://a.test/a"),
        (r#"{"id": 1, "kind": "prefix", "target": "a.test/ab"}"#, "invalid prefix target"),
        (r#"{"id": 1, "kind": "host", "target": "bad host"}"#, "invalid host target"),
        (r#"{"id": 1, "kind": "tag", "target": ""}"#, "tag"),
        (r#"{"id": 1, "kind": "tag", "target": "two\nlines"}"#, "one line"),
    ];
    for (json, expected) in cases {
        let (status, message) = edge.purge(json).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json} was accepted: {message}");
        assert!(message.contains(expected), "{json}: `{message}` does not name `{expected}`");
    }
    for (host, path) in OBJECTS {
        fetch(&edge, host, path).await.assert_hit();
    }
    let metrics = edge.metrics().await;
    for line in metrics.lines().filter(|l| l.starts_with("edgepurge_purges_total{")) {
        assert!(line.ends_with(" 0"), "a refused task was counted: {line}");
    }
    edge.shutdown().await;
}
