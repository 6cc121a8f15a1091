//! Policies in the request path, through real Wasm components (`make policies`):
//! `static-assets` (TTL overrides, directory tags, query-ignoring keys) and `api-read-through`
//! (API TTL, collection tags, keys without tracking parameters); URL purges of objects stored
//! under a policy key; swapping policies under load; hostile fixtures falling back to defaults.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use http::StatusCode;

use crate::support::{load_wasm, EdgeTest, Origin, Reply, Resp};

fn ttl(resp: &Resp) -> i64 {
    let params = resp.cache_params();
    params.get("ttl").unwrap_or_else(|| panic!("no ttl in `{}`", resp.cache_status())).parse().unwrap()
}

#[tokio::test]
async fn static_assets_sets_ttls_and_tags_directories() {
    let origin = Origin::start().await;
    origin.set("/js/app.3f9a8c1d.js", Reply::ok("app").cc("max-age=0"));
    origin.set("/img/logo.png", Reply::ok("logo"));
    origin.set("/img/icons/a.png", Reply::ok("icon"));
    origin.set("/css/site.css", Reply::ok("css").cc("max-age=600"));
    let edge = EdgeTest::new().origin("a.test", &origin).policy("static-assets").start().await;
    let paths = ["/js/app.3f9a8c1d.js", "/img/logo.png", "/img/icons/a.png", "/css/site.css"];
    for path in paths {
        edge.get(path).await.assert_fwd("miss");
    }
    // A fingerprinted file gets a year whatever the origin says; other files the default day
    // without origin freshness, and the origin's TTL when it states one.
    let hit = edge.get("/js/app.3f9a8c1d.js").await;
    hit.assert_hit();
    assert!(ttl(&hit) > 31_000_000, "`{}`", hit.cache_status());
    let hit = edge.get("/img/logo.png").await;
    hit.assert_hit();
    assert!((86_000..=86_400).contains(&ttl(&hit)), "`{}`", hit.cache_status());
    let hit = edge.get("/css/site.css").await;
    hit.assert_hit();
    assert!(ttl(&hit) <= 600, "`{}`", hit.cache_status());

    // The directory tag `path:/img` covers /img and everything below it.
    edge.purge_ok("tag", "path:/img", false).await;
    edge.get("/img/logo.png").await.assert_ok("logo").assert_fwd("miss");
    edge.get("/img/icons/a.png").await.assert_ok("icon").assert_fwd("miss");
    edge.get("/js/app.3f9a8c1d.js").await.assert_hit();
    edge.get("/css/site.css").await.assert_hit();
    edge.shutdown().await;
}

#[tokio::test]
async fn static_assets_query_ignore_shares_one_object_and_url_purges_find_it() {
    let origin = Origin::start().await;
    origin.set_fn("/css/a.css", |req| Reply::ok(format!("css for {}", req.path_and_query)).cc("max-age=600"));
    let edge = EdgeTest::new()
        .origin("a.test", &origin)
        .policy("static-assets")
        .policy_config("query-mode", "ignore")
        .start()
        .await;
    edge.get("/css/a.css?v=1").await.assert_ok("css for /css/a.css?v=1").assert_fwd("miss");
    edge.get("/css/a.css?v=2").await.assert_ok("css for /css/a.css?v=1").assert_hit();
    assert_eq!(origin.count("/css/a.css?v=2"), 0);

    // The policy keys the object as the URL without its query: purging that URL finds it.
    edge.purge_ok("url", "http://a.test/css/a.css", false).await;
    edge.get("/css/a.css?v=2").await.assert_ok("css for /css/a.css?v=2").assert_fwd("miss");
    // So does purging any URL the policy maps to the same key.
    edge.purge_ok("url", "http://a.test/css/a.css?v=3", false).await;
    edge.get("/css/a.css?v=1").await.assert_ok("css for /css/a.css?v=1").assert_fwd("miss");
    edge.shutdown().await;
}

#[tokio::test]
async fn api_read_through_keys_without_tracking_parameters_tags_collections_and_url_purges_find_objects() {
    let origin = Origin::start().await;
    origin.set_fn("*", |req| {
        Reply::ok(format!("{{\"for\":\"{}\"}}", req.path_and_query)).header("content-type", "application/json")
    });
    let edge = EdgeTest::new().origin("a.test", &origin).policy("api-read-through").start().await;
    let first = edge.get("/api/users?sort=name&page=2&utm_source=x").await;
    first.assert_fwd("miss");
    let body = first.text();
    for same in ["/api/users?page=2&sort=name&fbclid=1", "/api/users?page=2&sort=name"] {
        let hit = edge.get(same).await;
        hit.assert_ok(&body).assert_hit();
        // No freshness from the origin: the policy's API TTL (180 s).
        assert!((1..=180).contains(&ttl(&hit)), "`{}`", hit.cache_status());
    }
    edge.get("/api/orders/1").await.assert_fwd("miss");
    edge.get("/api/orders/1").await.assert_hit();

    // Tag `api:users` drops the users collection only.
    edge.purge_ok("tag", "api:users", false).await;
    edge.get("/api/users?page=2&sort=name").await.assert_fwd("miss");
    edge.get("/api/orders/1").await.assert_hit();

    // A URL purge of the canonical URL finds the object whichever URL filled it.
    edge.get("/api/orders?utm_campaign=y&page=1").await.assert_fwd("miss");
    edge.get("/api/orders?page=1").await.assert_hit();
    edge.purge_ok("url", "http://a.test/api/orders?page=1", false).await;
    edge.get("/api/orders?page=1").await.assert_fwd("miss");
    // And a URL purge of another URL with the same key does too.
    edge.purge_ok("url", "http://a.test/api/orders?page=1&utm_source=z", false).await;
    edge.get("/api/orders?page=1").await.assert_fwd("miss");
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swapping_policies_under_load_fails_no_request() {
    const CLIENTS: usize = 8;
    const MIN_REQUESTS: usize = 40;
    const SWAPS: usize = 12;
    let origin = Origin::start().await;
    origin.set_fn("*", |req| {
        let path = req.path_and_query.split('?').next().unwrap().to_owned();
        Reply::ok(format!("body of {path}")).cc("max-age=600").header("content-type", "application/json")
    });
    let edge = EdgeTest::new().origin("a.test", &origin).collapse("max-waiters", "64").start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, stop, served) = (edge.client(), Arc::clone(&stop), Arc::clone(&served));
            tokio::spawn(async move {
                let mut n = 0;
                while n < MIN_REQUESTS || !stop.load(Ordering::Relaxed) {
                    let path = match n % 4 {
                        0 => format!("/api/items?id={}&utm_source={c}", n % 7),
                        1 => format!("/js/app.{:08x}a.js?v={n}", n % 5),
                        2 => format!("/img/{}.png", n % 11),
                        _ => format!("/fresh/{c}/{n}"),
                    };
                    let resp = client.get(&path).await;
                    let expected = format!("body of {}", path.split('?').next().unwrap());
                    assert_eq!((resp.status, resp.text()), (StatusCode::OK, expected), "{path}");
                    n += 1;
                    served.fetch_add(1, Ordering::Relaxed);
                }
                n
            })
        })
        .collect();

    let slot = edge.policy();
    for swap in 0..SWAPS {
        let policy = match swap % 4 {
            0 => load_wasm("policies", "static-assets", &Default::default(), std::time::Duration::from_secs(5)).await,
            1 | 3 => edgepurge_policy_runtime::LoadedPolicy::builtin(Default::default()),
            _ => {
                load_wasm("policies", "api-read-through", &Default::default(), std::time::Duration::from_secs(5)).await
            }
        };
        slot.replace(policy);
        // Purges run against whichever policy is current, too.
        edge.purge_ok("prefix", "http://a.test/img/", swap % 2 == 0).await;
        tokio::task::yield_now().await;
    }
    let swapped_at = served.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for client in clients {
        total += client.await.expect("a client saw a failed request");
    }
    assert!(total >= CLIENTS * MIN_REQUESTS);
    assert!(swapped_at > 0, "no request was served while policies were being swapped");
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_policies_fall_back_to_the_defaults_and_requests_succeed() {
    for fixture in ["panic", "bad-returns", "infinite-loop", "memory-bomb"] {
        let origin = Origin::start().await;
        // A deadline the infinite loop certainly exceeds; the other fixtures fail by themselves.
        let edge = EdgeTest::new().origin("a.test", &origin).fixture(fixture).deadline_ms(50).start().await;
        for path in ["/boom", "/other"] {
            edge.get(path).await.assert_ok(&format!("body of {path}")).assert_fwd("miss");
            edge.get(path).await.assert_ok(&format!("body of {path}")).assert_hit();
        }
        // The default scope: exactly the URL, whatever the policy tried.
        let report = edge.purge_ok("url", "http://a.test/boom", false).await;
        assert!(report.contains("fallback") || report.contains("not-declared"), "{fixture}: {report}");
        edge.get("/boom").await.assert_ok("body of /boom").assert_fwd("miss");
        edge.get("/other").await.assert_hit();
        assert_eq!(origin.count("/other"), 1, "{fixture}");
        edge.shutdown().await;
    }
}
