//! Per-edge liveness in a batch's status: `edges[].connected` and `last_seen` from the hub's live
//! streams (registered here as the queue server registers a stream), no ETA while an edge that
//! has not applied the batch is disconnected, and a `progress` event whenever an edge connects
//! or disconnects.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use edgepurge_control_store::RecordStore;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::support::{ControlTest, Running};

/// Bounds a broken run only.
const PATIENCE: Duration = Duration::from_secs(30);

fn peer() -> SocketAddr {
    "127.0.0.1:1".parse().unwrap()
}

/// The status document's entry for `edge`.
fn edge<'a>(status: &'a Value, edge: &str) -> &'a Value {
    status["edges"].as_array().unwrap().iter().find(|e| e["edge"] == edge).unwrap_or_else(|| panic!("{status}"))
}

/// `GET /v1/purges/{id}`'s document.
async fn status(c: &Running, token: &str, id: u64) -> Value {
    c.send("GET", &format!("/v1/purges/{id}"), Some(token), &[], "").await.json
}

/// Sets `edge`'s watermarks past batch `id`.
async fn apply(c: &Running, edge: &str, id: u64) {
    let batch = c.store.batch(id).await.unwrap().unwrap();
    for span in batch.spans.iter().filter(|s| s.own > 0) {
        c.store.set_watermark(edge, span.queue, span.last, 1).await.unwrap();
    }
}

#[tokio::test]
async fn the_status_says_which_edges_are_connected_and_has_no_eta_while_one_with_work_is_not() {
    let c = ControlTest::new().start().await.unwrap();
    c.store.register_edge("edge-1", 0).await.unwrap();
    c.store.register_edge("edge-2", 0).await.unwrap();
    let one = c.state.queue.register("edge-1", peer(), 5_000);
    let t = c.token("t", &["a.com"], false).await;
    let r = c.purge(&t, json!({"urls": ["http://a.com/1"]})).await;
    assert_eq!(r.status, 202);
    let id = r.json["id"].as_u64().unwrap();

    let s = status(&c, &t, id).await;
    assert_eq!(
        (&edge(&s, "edge-1")["connected"], &edge(&s, "edge-1")["last_seen"]),
        (&json!(true), &json!("1970-01-01T00:00:05.000Z"))
    );
    assert_eq!((&edge(&s, "edge-2")["connected"], &edge(&s, "edge-2")["last_seen"]), (&json!(false), &Value::Null));
    assert!(s.get("eta_ms").is_none() && s.get("eta").is_none(), "edge-2 is disconnected with work left: {s}");

    // edge-2 connects: the batch has an ETA again.
    let two = c.state.queue.register("edge-2", peer(), 6_000);
    let s = status(&c, &t, id).await;
    assert_eq!(edge(&s, "edge-2")["connected"], true, "{s}");
    assert!(s["eta_ms"].is_u64() && s["eta"].is_string(), "every edge with work left is connected: {s}");

    // edge-2 applies the batch and goes away: it holds nothing up.
    apply(&c, "edge-2", id).await;
    drop(two);
    let s = status(&c, &t, id).await;
    assert_eq!(
        (&edge(&s, "edge-2")["connected"], &edge(&s, "edge-2")["last_seen"]),
        (&json!(false), &json!("1970-01-01T00:00:06.000Z"))
    );
    assert!(s["eta_ms"].is_u64(), "the disconnected edge is through the batch: {s}");

    // edge-1 goes away with the batch still to apply: no ETA.
    drop(one);
    let s = status(&c, &t, id).await;
    assert_eq!((s["state"].as_str(), edge(&s, "edge-1")["connected"].as_bool()), (Some("in-progress"), Some(false)));
    assert!(s.get("eta_ms").is_none(), "{s}");
    c.stop().await;
}

/// An open event stream of one batch.
struct Events {
    body: Incoming,
    buffer: String,
}

impl Events {
    async fn open(c: &Running, token: &str, id: u64) -> Events {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let request = hyper::Request::get(format!("{}/v1/purges/{id}/events", c.base))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        Events { body: response.into_body(), buffer: String::new() }
    }

    /// The next `progress` event's document; `None` when the stream ended.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                    assert!(block.contains("event: progress"), "{block}");
                    return Some(serde_json::from_str(data).unwrap());
                }
                continue; // a keep-alive comment
            }
            let frame = tokio::time::timeout(PATIENCE, self.body.frame()).await.expect("no event in time")?;
            if let Ok(data) = frame.unwrap().into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// Events until one satisfies `wanted`; that one.
    async fn until(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let doc = self.next().await.expect("the stream ended first");
            if wanted(&doc) {
                return doc;
            }
        }
    }
}

#[tokio::test]
async fn the_event_stream_sends_an_event_when_an_edge_connects_or_disconnects() {
    let c = ControlTest::new().start().await.unwrap();
    c.store.register_edge("edge-1", 0).await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    let id = c.purge(&t, json!({"urls": ["http://a.com/1"]})).await.json["id"].as_u64().unwrap();
    let mut events = Events::open(&c, &t, id).await;
    let first = events.next().await.unwrap();
    assert_eq!((first["state"].as_str(), edge(&first, "edge-1")["connected"].as_bool()), (Some("queued"), Some(false)));

    let stream = c.state.queue.register("edge-1", peer(), 7_000);
    let doc = events.until(|d| edge(d, "edge-1")["connected"] == true).await;
    assert_eq!(edge(&doc, "edge-1")["last_seen"], "1970-01-01T00:00:07.000Z");
    assert_eq!(doc["state"], "queued", "only the edge's stream changed");
    drop(stream);
    events.until(|d| edge(d, "edge-1")["connected"] == false).await;

    apply(&c, "edge-1", id).await;
    let done = events.until(|d| d["state"] == "done").await;
    assert_eq!(edge(&done, "edge-1")["connected"], false);
    assert!(events.next().await.is_none(), "the stream ends after done");
    c.stop().await;
}
