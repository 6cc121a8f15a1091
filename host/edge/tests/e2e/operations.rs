//! Operating an edge: the `PURGE` method (admin networks only), warm tasks through the fill
//! path, policy swaps through the admin listener (`GET|PUT /policy`, `POST /policy/reload`)
//! without failing requests, request ids, and the request/origin/policy metrics.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use http::{Method, StatusCode};

use crate::support::{wasm_bytes, EdgeTest, Origin, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_method_from_admin_networks_only() {
    let origin = Origin::start().await;
    origin.set("/p", Reply::ok("P").cc("max-age=600").header("etag", "\"p\"").conditional());
    // Loopback is an admin network by default.
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    edge.get("/p").await.assert_fwd("miss");
    let resp = edge.req(Method::from_bytes(b"PURGE").unwrap(), "/p").send().await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert!(resp.text().contains("hard Url(\\\"http://a.test/p\\\")"), "{}", resp.text());
    edge.get("/p").await.assert_fwd("miss");
    edge.get("/p").await.assert_hit();
    // Soft: kept but stale, so the next request revalidates (and the 304 serves the body).
    let resp = edge.req(Method::from_bytes(b"PURGE").unwrap(), "/p").header("edgepurge-soft", "1").send().await;
    assert!(resp.text().contains("soft Url"), "{}", resp.text());
    let resp = edge.get("/p").await;
    resp.assert_ok("P").assert_fwd("stale");
    assert_eq!(origin.last("/p").header("if-none-match").as_deref(), Some("\"p\""));
    assert_eq!(origin.count("/p"), 3, "PURGE itself never reaches the origin");
    edge.shutdown().await;

    // From outside the admin networks: 405, nothing purged.
    let edge = EdgeTest::new().origin("a.test", &origin).top("admin-networks", "[\"10.0.0.0/8\"]").start().await;
    edge.get("/p").await;
    let resp = edge.req(Method::from_bytes(b"PURGE").unwrap(), "/p").send().await;
    assert_eq!(resp.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(resp.text().contains("admin-networks") && resp.header("allow").is_some(), "{}", resp.text());
    edge.get("/p").await.assert_hit();
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_fetches_into_the_cache_through_the_fill_path() {
    let origin = Origin::start().await;
    origin.set("/w", Reply::ok("W").cc("max-age=600"));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    // The scheme does not matter: the edge's URLs are scheme-independent.
    let report = edge.purge_ok("warm", "https://a.test/w", false).await;
    assert!(report.contains("\"warmed\"") && report.contains("stored"), "{report}");
    assert_eq!(origin.count("/w"), 1);
    edge.get("/w").await.assert_ok("W").assert_hit();
    // Warming a fresh object leaves it alone; after a purge it fetches again.
    let report = edge.purge_ok("warm", "http://a.test/w", false).await;
    assert!(report.contains("hit"), "{report}");
    assert_eq!(origin.count("/w"), 1);
    edge.purge_ok("url", "https://a.test/w", false).await;
    edge.purge_ok("warm", "http://a.test/w", false).await;
    assert_eq!(origin.count("/w"), 2);
    edge.get("/w").await.assert_hit();
    // A host without an origin: refused with the reason.
    let (status, text) = edge.purge(r#"{"id": 2, "kind": "warm", "target": "http://nowhere.test/w"}"#).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(text.contains("no origin configured for host nowhere.test"), "{text}");
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn policy_swaps_through_the_admin_listener_fail_no_request() {
    let origin = Origin::start().await;
    let default_wasm = format!("{}/../../target/policies/default.wasm", env!("CARGO_MANIFEST_DIR"));
    let edge = EdgeTest::new().origin("a.test", &origin).policy_file(&default_wasm).start().await;
    let (status, text) = edge.admin(Method::GET, "/policy", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("\"name\":\"builtin\""), "{text}");

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..8)
        .map(|i| {
            let (client, stop, answered) = (edge.client(), Arc::clone(&stop), Arc::clone(&answered));
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let path = format!("/load/{i}/{}", n % 5);
                    let resp = client.get(&path).await;
                    assert_eq!(resp.status, StatusCode::OK, "{path} failed during a swap: {}", resp.text());
                    answered.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    for round in 0..3 {
        let (status, text) = edge.admin(Method::PUT, "/policy", wasm_bytes("policies", "static-assets")).await;
        assert_eq!(status, StatusCode::OK, "round {round}: {text}");
        assert!(text.contains("\"name\":\"static-assets\"") && text.contains("\"source\":\"upload\""), "{text}");
        let (status, text) = edge.admin(Method::POST, "/policy/reload", Vec::new()).await;
        assert_eq!(status, StatusCode::OK, "round {round}: {text}");
        assert!(text.contains("\"name\":\"default\"") && text.contains("default.wasm"), "{text}");
    }
    // A rejected upload says why and leaves the current policy serving.
    let (status, text) = edge.admin(Method::PUT, "/policy", b"not wasm".to_vec()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text.contains("not a valid WebAssembly component") && text.contains("keeps serving"), "{text}");
    let (status, text) = edge.admin(Method::PUT, "/policy", wasm_bytes("fixtures", "forbidden-sockets")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    let (_, text) = edge.admin(Method::GET, "/policy", Vec::new()).await;
    assert!(text.contains("\"name\":\"default\""), "{text}");

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("a request failed during a policy swap");
    }
    assert!(answered.load(Ordering::Relaxed) > 0);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_and_metrics() {
    let origin = Origin::start().await;
    origin.set("/m", Reply::ok("M").cc("max-age=600"));
    let edge = EdgeTest::new().origin("a.test", &origin).start().await;
    // The client's id travels to the origin and back; without one the edge makes one.
    let resp = edge.req(Method::GET, "/m").header("x-request-id", "trace-42").send().await;
    assert_eq!(resp.header("x-request-id").as_deref(), Some("trace-42"));
    assert_eq!(origin.last("/m").header("x-request-id").as_deref(), Some("trace-42"));
    let (a, b) = (edge.get("/m").await, edge.get("/m").await);
    let (a, b) = (a.header("x-request-id").unwrap(), b.header("x-request-id").unwrap());
    assert!(a.len() == 16 && a != b, "{a} {b}");
    let bad = edge.req(Method::GET, "/m").header("x-request-id", &"x".repeat(65)).send().await;
    assert_ne!(bad.header("x-request-id"), Some("x".repeat(65)));

    edge.get("/nothing-here").await;
    assert_eq!(edge.metric("edgepurge_requests_total{cache=\"hit\"}").await, 3);
    assert_eq!(edge.metric("edgepurge_requests_total{cache=\"miss\"}").await, 2);
    assert_eq!(edge.metric("edgepurge_responses_total{code=\"2xx\"}").await, 5);
    assert_eq!(edge.metric("edgepurge_origin_requests_total{outcome=\"ok\"}").await, 2);
    assert_eq!(edge.metric("edgepurge_origin_latency_seconds_count").await, 2);
    let series = "edgepurge_policy_calls_total{hook=\"cache-rules\",decided=\"not-declared\"}";
    assert_eq!(edge.metric(series).await, 2);
    edge.purge_ok("tag", "k1", false).await;
    let series = "edgepurge_policy_calls_total{hook=\"scope-purge\",decided=\"not-declared\"}";
    assert_eq!(edge.metric(series).await, 1);
    edge.shutdown().await;
}
