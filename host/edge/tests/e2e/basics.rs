//! The basics end to end: miss then hit, collapsing, prefix purge, HEAD, unsafe-method
//! invalidation, a dead origin, an unknown host.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edgepurge_edge::config::EdgeConfig;
use edgepurge_edge::server::Edge;
use edgepurge_policy_runtime::LoadedPolicy;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::support::{cache_status, count, start_origin, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn miss_hit_collapse_purge_and_unknown_host() {
    let (origin, counts) = start_origin().await;
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nadmin-listen = \"127.0.0.1:0\"\n[[origin]]\nhost = \"a.test\"\nurl = \"http://{origin}\"\n\
         [collapse]\nmax-waiters = 100\nwait-timeout-ms = 10000\n"
    );
    let config = EdgeConfig::parse(&toml, "test.toml").unwrap();
    let policy = LoadedPolicy::builtin(Default::default());
    let edge = Edge::new(config, policy).unwrap().bind().await.unwrap();
    let (proxy, admin) = (edge.proxy_addr(), edge.admin_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(edge.serve(stop_rx));
    let h = Harness { proxy, admin, client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()) };

    // Miss, then hit with Age; one origin request.
    let (status, headers, body) = h.get("a.test", "/a").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"body of /a");
    assert!(cache_status(&headers).contains("fwd=miss"), "{}", cache_status(&headers));
    assert!(cache_status(&headers).contains("stored"), "{}", cache_status(&headers));
    let (status, headers, body) = h.get("a.test", "/a").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"body of /a");
    assert!(cache_status(&headers).contains("hit"), "{}", cache_status(&headers));
    assert!(headers.contains_key("age"), "{headers:?}");
    assert_eq!(count(&counts, "/a"), 1);
    h.get("a.test", "/b").await;

    // 50 concurrent misses of a new URL: one origin request, every waiter answered.
    let h = Arc::new(h);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let h = Arc::clone(&h);
            tokio::spawn(async move { h.get("a.test", "/slow").await })
        })
        .collect();
    for task in tasks {
        let (status, _, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"body of /slow");
    }
    assert_eq!(count(&counts, "/slow"), 1);

    // A prefix purge of /a makes /a a miss again, not /b.
    let (status, report) = h.purge(r#"{"id": 7, "kind": "prefix", "target": "http://a.test/a"}"#.to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let (_, headers, _) = h.get("a.test", "/a").await;
    assert!(cache_status(&headers).contains("fwd="), "{}", cache_status(&headers));
    assert_eq!(count(&counts, "/a"), 2);
    let (_, headers, _) = h.get("a.test", "/b").await;
    assert!(cache_status(&headers).contains("hit"), "{}", cache_status(&headers));
    assert_eq!(count(&counts, "/b"), 1);

    // A bad task is refused with its reason.
    let (status, message) = h.purge(r#"{"id": 8, "kind": "url", "target": "/relative"}"#.to_owned()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("/relative"), "{message}");

    // Metrics.
    let req = Request::get(format!("http://{admin}/metrics")).body(Full::new(Bytes::new())).unwrap();
    let metrics = h.client.request(req).await.unwrap().into_body().collect().await.unwrap().to_bytes();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(metrics.contains("edgepurge_purges_total{scope=\"prefix\",mode=\"hard\"} 1"), "{metrics}");

    // A host without an origin: a clear 4xx.
    let (status, _, body) = h.get("nowhere.test", "/a").await;
    assert!(status.is_client_error(), "{status}");
    assert!(String::from_utf8_lossy(&body).contains("no origin configured for host nowhere.test"));

    stop_tx.send(()).unwrap();
    drop(h);
    tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_unsafe_invalidation_and_dead_origin() {
    let (origin, counts) = start_origin().await;
    // A port that refuses connections: bound (so no other test can take it) but not listening.
    let dead_socket = tokio::net::TcpSocket::new_v4().unwrap();
    dead_socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = dead_socket.local_addr().unwrap();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nadmin-listen = \"127.0.0.1:0\"\n[[origin]]\nhost = \"a.test\"\nurl = \"http://{origin}\"\n\
         [[origin]]\nhost = \"dead.test\"\nurl = \"http://{dead}\"\nconnect-timeout-ms = 500\nread-timeout-ms = 1000\n"
    );
    let config = EdgeConfig::parse(&toml, "test.toml").unwrap();
    let edge = Edge::new(config, LoadedPolicy::builtin(Default::default())).unwrap().bind().await.unwrap();
    let (proxy, admin) = (edge.proxy_addr(), edge.admin_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(edge.serve(stop_rx));
    let h = Harness { proxy, admin, client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()) };

    // HEAD is answered from the stored GET.
    h.get("a.test", "/c").await;
    let req =
        Request::head(format!("http://{proxy}/c")).header("host", "a.test").body(Full::new(Bytes::new())).unwrap();
    let resp = h.client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(cache_status(resp.headers()).contains("hit"), "{}", cache_status(resp.headers()));
    assert_eq!(count(&counts, "/c"), 1);

    // A successful POST to /c invalidates it.
    let req =
        Request::post(format!("http://{proxy}/c")).header("host", "a.test").body(Full::new(Bytes::from("x"))).unwrap();
    let resp = h.client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(cache_status(resp.headers()).contains("fwd=method"));
    let (_, headers, _) = h.get("a.test", "/c").await;
    assert!(cache_status(&headers).contains("fwd=miss"), "{}", cache_status(&headers));
    assert_eq!(count(&counts, "/c"), 3);

    // An origin refusing connections: 502 with the reason, no hang.
    let (status, _, body) = tokio::time::timeout(Duration::from_secs(5), h.get("dead.test", "/x")).await.unwrap();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{}", String::from_utf8_lossy(&body));

    drop(dead_socket);
    stop_tx.send(()).unwrap();
    drop(h);
    tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
}
