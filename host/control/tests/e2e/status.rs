//! `GET /v1/purges/{id}`: state and per-edge progress from watermarks; other tenants see 404.

use edgepurge_control_store::RecordStore;
use serde_json::json;

use crate::support::ControlTest;

#[tokio::test]
async fn status_follows_the_edges_watermarks() {
    let c = ControlTest::new().start().await.unwrap();
    // Registered at time 0, before the batch is accepted, so it counts; connected, so the batch
    // has an ETA (`liveness.rs`: none while an edge with work left is disconnected).
    c.store.register_edge("edge-1", 0).await.unwrap();
    let stream = c.state.queue.register("edge-1", "127.0.0.1:1".parse().unwrap(), 0);
    let t = c.token("t", &["a.com"], false).await;
    let r = c.purge(&t, json!({"urls": ["http://a.com/1", "http://a.com/2"]})).await;
    assert_eq!(r.status, 202);
    let path = format!("/v1/purges/{}", r.json["id"]);
    let s = c.send("GET", &path, Some(&t), &[], "").await;
    assert_eq!(s.status, 200, "{s:?}");
    assert_eq!(s.json["state"], "queued");
    assert_eq!(s.json["tasks"], 2);
    assert_eq!(s.json["percent"], 0.0);
    assert_eq!(s.json["queued_at"], r.json["queued_at"]);
    assert_eq!(s.json["edges"][0]["edge"], "edge-1");
    assert_eq!(s.json["edges"][0]["total"], 2);
    assert_eq!(s.json["edges"][0]["lag"], 2);
    // Not done: an ETA from the expected wait of the queues it uses (pending bytes at the
    // speed floor, as no history exists yet).
    assert!(s.json["eta_ms"].as_u64().is_some() && s.json["eta"].is_string(), "{s:?}");

    // Apply the batch's spans one queue at a time.
    let spans: Vec<(u32, u64)> = s.json["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["queue"].as_u64().unwrap() as u32, q["last"].as_u64().unwrap()))
        .collect();
    let (q0, last0) = spans[0];
    c.store.set_watermark("edge-1", q0, last0, 1).await.unwrap();
    let s = c.send("GET", &path, Some(&t), &[], "").await;
    let expected = if spans.len() == 1 { "done" } else { "in-progress" };
    assert_eq!(s.json["state"], expected, "{s:?}");
    for (q, last) in &spans {
        c.store.set_watermark("edge-1", *q, *last, 2).await.unwrap();
    }
    let s = c.send("GET", &path, Some(&t), &[], "").await;
    assert_eq!(s.json["state"], "done");
    assert_eq!(s.json["percent"], 100.0);
    assert_eq!(s.json["edges"][0]["applied"], 2);
    assert_eq!(s.json["edges"][0]["lag"], 0);
    assert!(s.json.get("eta_ms").is_none(), "a done batch has no ETA: {s:?}");
    drop(stream);
    c.stop().await;
}

#[tokio::test]
async fn other_tenants_and_unknown_ids_get_404_admins_see_all() {
    let c = ControlTest::new().start().await.unwrap();
    let a = c.token("a", &["a.com"], false).await;
    let b = c.token("b", &["b.com"], false).await;
    let admin = c.token("admin", &[], true).await;
    let r = c.purge(&a, json!({"urls": ["http://a.com/1"]})).await;
    let path = format!("/v1/purges/{}", r.json["id"]);
    assert_eq!(c.send("GET", &path, Some(&b), &[], "").await.status, 404);
    assert_eq!(c.send("GET", &path, Some(&admin), &[], "").await.status, 200);
    assert_eq!(c.send("GET", "/v1/purges/999", Some(&a), &[], "").await.status, 404);
    assert_eq!(c.send("GET", "/v1/purges/abc", Some(&a), &[], "").await.status, 404);
    // No edge registered: nothing to wait for.
    assert_eq!(c.send("GET", &path, Some(&a), &[], "").await.json["state"], "done");
    c.stop().await;
}

#[tokio::test]
async fn health_readiness_and_queues() {
    let c = ControlTest::new().start().await.unwrap();
    assert_eq!(c.send("GET", "/healthz", None, &[], "").await.status, 200);
    assert_eq!(c.send("GET", "/readyz", None, &[], "").await.status, 200);
    let t = c.token("t", &["a.com"], false).await;
    assert_eq!(c.send("GET", "/v1/queues", None, &[], "").await.status, 401);
    c.purge(&t, json!({"urls": ["http://a.com/1"]})).await;
    let q = c.send("GET", "/v1/queues", Some(&t), &[], "").await;
    assert_eq!(q.status, 200);
    let queues = q.json["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 4);
    assert_eq!(queues.iter().map(|q| q["depth"].as_u64().unwrap()).sum::<u64>(), 1);
    c.stop().await;
}

#[tokio::test]
async fn the_reported_wait_follows_the_configured_speed_floor() {
    // No send history, so the speed is the floor: 1000 B/s here, 1 MiB/s by default.
    let slow = "pacing-ms = 100\n[policy.config]\nspeed-floor-bytes-per-sec = \"1000\"";
    for (config, floor) in [(slow, 1000.0), ("pacing-ms = 100", 1_048_576.0)] {
        let c = ControlTest::new().config(config).start().await.unwrap();
        c.store.register_edge("edge-1", 0).await.unwrap();
        let stream = c.state.queue.register("edge-1", "127.0.0.1:1".parse().unwrap(), 0);
        let t = c.token("t", &["a.com"], false).await;
        let r = c.purge(&t, json!({"urls": ["http://a.com/1"]})).await;
        let q = c.send("GET", "/v1/queues", Some(&t), &[], "").await;
        let used = q.json["queues"].as_array().unwrap().iter().find(|q| q["depth"] == 1).expect("one queue used");
        let bytes = used["pending_bytes"].as_u64().unwrap();
        assert_eq!(used["speed_bytes_per_sec"], floor as u64, "{q:?}");
        // What the built-in `select-queue` compares, from the SDK's one formula.
        let wait = edgepurge_sdk::defaults::queue_wait_ms(bytes, 1, &[], 0, 100, floor) as u64;
        assert_eq!(used["expected_wait_ms"], wait, "{q:?}");
        let s = c.send("GET", &format!("/v1/purges/{}", r.json["id"]), Some(&t), &[], "").await;
        assert_eq!(s.json["eta_ms"], wait, "{s:?}");
        drop(stream);
        c.stop().await;
    }
}

#[tokio::test]
async fn records_list_every_purge_covering_a_url_with_paging_and_edge_state() {
    let c = ControlTest::new().start().await.unwrap();
    c.store.register_edge("edge-1", 0).await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    for i in 0..3 {
        let r = c.purge(&t, json!({"urls": ["https://a.com/x"], "prefixes": [format!("http://a.com/{i}/")]})).await;
        assert_eq!(r.status, 202);
    }
    c.purge(&t, json!({"prefixes": ["http://a.com/"]})).await;
    let page = c.send("GET", "/v1/records?url=HTTP://A.COM/x&limit=3", Some(&t), &[], "").await;
    assert_eq!(page.status, 200, "{page:?}");
    let entries = page.json["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(entries.iter().all(|e| e["target"] == "http://a.com/x" && e["edges"][0]["applied"] == false));
    let next = page.json["next"].as_u64().expect("a second page");
    let rest = c.send("GET", &format!("/v1/records?url=http://a.com/x&after={next}"), Some(&t), &[], "").await;
    let rest = rest.json["entries"].as_array().unwrap().clone();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["kind"], "prefix");
    assert_eq!(rest[0]["target"], "http://a.com/");

    let edges = c.send("GET", "/v1/edges", Some(&t), &[], "").await;
    assert_eq!(edges.json["edges"][0]["name"], "edge-1");
    assert_eq!(edges.json["edges"][0]["queues"].as_array().unwrap().len(), 4);

    let other = c.send("GET", "/v1/records?host=b.com", Some(&t), &[], "").await;
    assert_eq!(other.status, 403);
    let bad = c.send("GET", "/v1/records", Some(&t), &[], "").await;
    assert_eq!(bad.status, 400);
    c.stop().await;
}

#[tokio::test]
async fn metrics_count_submissions_and_show_queue_depth() {
    let c = ControlTest::new().start().await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    c.purge(&t, json!({"urls": ["http://a.com/1", "http://a.com/2"]})).await;
    c.purge(&t, json!({"urls": ["http://b.com/1"]})).await;
    let m = c.send("GET", "/metrics", None, &[], "").await;
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.body.to_vec()).unwrap();
    assert!(text.contains("edgepurge_control_submissions_total{outcome=\"accepted\"} 1\n"), "{text}");
    assert!(text.contains("edgepurge_control_submissions_total{outcome=\"forbidden\"} 1\n"), "{text}");
    assert!(text.contains("edgepurge_control_tasks_accepted_total 2\n"), "{text}");
    assert!(text.contains("edgepurge_control_queue_depth{queue=\"0\"}"), "{text}");
    c.stop().await;
}

#[tokio::test]
async fn the_event_stream_sends_progress_until_done() {
    let c = ControlTest::new().start().await.unwrap();
    c.store.register_edge("edge-1", 0).await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    let r = c.purge(&t, json!({"urls": ["http://a.com/1"]})).await;
    let queue = {
        let s = c.send("GET", &format!("/v1/purges/{}", r.json["id"]), Some(&t), &[], "").await;
        s.json["queues"][0]["queue"].as_u64().unwrap() as u32
    };
    let store = c.store.clone();
    // The edge applies the batch while the stream is open; the stream must end with `done`.
    let apply = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        store.set_watermark("edge-1", queue, 1, 1).await.unwrap();
    });
    let events = c.send("GET", &format!("/v1/purges/{}/events", r.json["id"]), Some(&t), &[], "").await;
    apply.await.unwrap();
    assert_eq!(events.status, 200);
    assert_eq!(events.header("content-type"), "text/event-stream");
    let text = String::from_utf8(events.body.to_vec()).unwrap();
    let states: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| if d.contains("\"state\":\"done\"") { "done" } else { "other" })
        .collect();
    assert_eq!(states.last(), Some(&"done"), "{text}");
    assert!(text.contains("event: progress"));
    let other = c.token("o", &["a.com"], false).await;
    assert_eq!(c.send("GET", &format!("/v1/purges/{}/events", r.json["id"]), Some(&other), &[], "").await.status, 404);
    c.stop().await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let c = ControlTest::new().start().await.unwrap();
    let doc = c.send("GET", "/v1/openapi.json", None, &[], "").await;
    assert_eq!(doc.status, 200);
    let paths = doc.json["paths"].as_object().unwrap();
    for route in [
        "/v1/purges",
        "/v1/purges/{id}",
        "/v1/purges/{id}/events",
        "/v1/records",
        "/v1/queues",
        "/v1/edges",
        "/v1/edges/{name}",
        "/v1/policy",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(route), "{route} missing from openapi.json");
    }
    c.stop().await;
}

#[tokio::test]
async fn a_batch_with_failed_tasks_ends_partially_failed() {
    let c = ControlTest::new().start().await.unwrap();
    c.store.register_edge("edge-1", 0).await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    let r = c.purge(&t, json!({"urls": ["http://a.com/1"]})).await;
    let path = format!("/v1/purges/{}", r.json["id"]);
    let queue = c.send("GET", &path, Some(&t), &[], "").await.json["queues"][0].clone();
    let (q, last) = (queue["queue"].as_u64().unwrap() as u32, queue["last"].as_u64().unwrap());
    c.store.report_failure("edge-1", q, last, "origin refused the warm fetch", 1).await.unwrap();
    c.store.set_watermark("edge-1", q, last, 2).await.unwrap();
    let s = c.send("GET", &path, Some(&t), &[], "").await;
    assert_eq!(s.json["state"], "partially-failed", "{s:?}");
    assert_eq!((s.json["failed"].as_u64(), s.json["edges"][0]["failed"].as_u64()), (Some(1), Some(1)));
    c.stop().await;
}
