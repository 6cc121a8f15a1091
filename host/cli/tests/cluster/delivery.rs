//! Delivery: a purge reaches every edge and the records say so; an edge killed mid-batch and a
//! restarted control node lose nothing; connections cut at random change nothing.

use serde_json::{json, Value};

use crate::harness::{Cluster, PATIENCE};

const HOST: &str = "shop.test";

fn url(path: &str) -> String {
    format!("http://{HOST}{path}")
}

/// Per-edge `applied` of a batch status, by edge name.
fn applied(status: &Value, edge: &str) -> u64 {
    let edges = status["edges"].as_array().cloned().unwrap_or_default();
    edges.iter().find(|e| e["edge"] == edge).and_then(|e| e["applied"].as_u64()).unwrap_or(0)
}

fn assert_miss_everywhere(cluster: &Cluster, path: &str) {
    for i in 0..cluster.edges.len() {
        let (status, cache) = cluster.get(i, HOST, path);
        assert!(status == 200 && cache.contains("fwd=miss"), "edge {i} {path} after the purge: {status} {cache}");
    }
}

#[test]
fn a_purge_reaches_every_edge_and_the_records_say_done() {
    let cluster = Cluster::builder().edges(3).build();
    cluster.warm_all(HOST, "/a");
    let id = cluster.purge(&json!({"urls": [url("/a")]}).to_string());
    let status = cluster.wait_done(id);
    for edge in &cluster.edges {
        assert_eq!(applied(&status, &edge.name), 1, "{status}");
    }
    assert_miss_everywhere(&cluster, "/a");

    let (code, records) = cluster.api_call("GET", &format!("/v1/records?url={}", url("/a")), None);
    assert_eq!(code, 200, "{records}");
    let entry = &records["entries"][0];
    assert_eq!(entry["batch"].as_u64().or(entry["id"].as_u64()), Some(id), "{records}");
    let on_edges = entry["edges"].as_array().expect("per-edge states");
    assert_eq!(on_edges.len(), 3, "{records}");
    assert!(on_edges.iter().all(|e| e["applied"] == true), "{records}");
}

#[test]
fn an_edge_killed_mid_batch_catches_up_with_nothing_missed() {
    let mut cluster = Cluster::builder().edges(3).build();
    let urls: Vec<String> = (0..5_000).map(|i| url(&format!("/p/{i}"))).collect();
    let id = cluster.purge(&json!({ "urls": urls }).to_string());
    // Kill edge-2 as soon as it has applied something of the batch (or the batch is done).
    let name = cluster.edges[1].name.clone();
    let start = std::time::Instant::now();
    loop {
        let status = cluster.api_call("GET", &format!("/v1/purges/{id}"), None).1;
        let done = applied(&status, &name);
        if done > 0 || start.elapsed() > PATIENCE {
            eprintln!("killing {name} at {done} of 5000 applied");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    cluster.kill_edge(1);
    // More purges arrive while it is down.
    let later = cluster.purge(&json!({"urls": [url("/later")]}).to_string());
    cluster.start_edge(1);
    let status = cluster.wait_done(id);
    for edge in &cluster.edges {
        assert_eq!(applied(&status, &edge.name), 5_000, "{status}");
    }
    cluster.wait_done(later);
    // The restarted edge serves and purges as before.
    cluster.warm_all(HOST, "/after");
    let id = cluster.purge(&json!({"urls": [url("/after")]}).to_string());
    cluster.wait_done(id);
    assert_miss_everywhere(&cluster, "/after");
}

#[test]
fn edges_reconnect_and_resume_after_the_control_node_restarts() {
    let mut cluster = Cluster::builder().edges(3).build();
    let first = cluster.purge(&json!({"urls": [url("/one")]}).to_string());
    cluster.wait_done(first);
    cluster.stop_control(true);
    cluster.start_control();
    cluster.wait_connected();
    cluster.warm_all(HOST, "/two");
    let second = cluster.purge(&json!({"urls": [url("/two")], "prefixes": [url("/dir/")]}).to_string());
    cluster.wait_done(second);
    assert_miss_everywhere(&cluster, "/two");
    // Each edge resumed where it was: it applied each task once, none again from offset 1.
    for i in 0..cluster.edges.len() {
        let duplicates = cluster.edge_metric(i, "edgepurge_control_duplicates_total");
        assert_eq!(duplicates, 0.0, "edge {i} was sent tasks it already had");
    }
}

#[test]
fn connections_cut_at_random_change_nothing() {
    let cluster = Cluster::builder().edges(3).chaos().build();
    cluster.warm_all(HOST, "/kept");
    let mut ids = Vec::new();
    for batch in 0..20 {
        let urls: Vec<String> = (0..100).map(|i| url(&format!("/c/{batch}/{i}"))).collect();
        ids.push(cluster.purge(&json!({ "urls": urls }).to_string()));
    }
    for id in &ids {
        let status = cluster.wait_done(*id);
        for edge in &cluster.edges {
            assert_eq!(applied(&status, &edge.name), 100, "{status}");
        }
    }
    let cuts = cluster.chaos.as_ref().unwrap().cuts.load(std::sync::atomic::Ordering::SeqCst);
    assert!(cuts > 0, "the proxy cut no connection, so the test proved nothing");
    eprintln!("the proxy cut {cuts} connections");
    // Every task applied exactly once per edge, whatever was re-sent after a cut.
    for i in 0..cluster.edges.len() {
        assert_eq!(cluster.edge_metric(i, "edgepurge_control_tasks_applied_total"), 2_000.0, "edge {i}");
    }
    // Nothing else was purged.
    for i in 0..cluster.edges.len() {
        let (_, cache) = cluster.get(i, HOST, "/kept");
        assert!(cache.contains("hit"), "edge {i}: /kept was not purged: {cache}");
    }
}

#[test]
fn a_task_an_edge_cannot_apply_is_reported_with_its_reason() {
    let cluster = Cluster::builder().edges(3).build();
    let id = cluster.purge(&json!({"urls": [url("/fail/1")], "warm": true}).to_string());
    let mut status = Value::Null;
    cluster.wait_for("the warm batch to end partially failed", || {
        status = cluster.api_call("GET", &format!("/v1/purges/{id}"), None).1;
        status["state"] == "partially-failed"
    });
    for edge in &cluster.edges {
        let entry = status["edges"].as_array().unwrap().iter().find(|e| e["edge"] == edge.name.as_str()).unwrap();
        // A warm request is two tasks (purge the URL, then fetch it); the fetch failed.
        assert_eq!((entry["applied"].as_u64(), entry["failed"].as_u64()), (Some(2), Some(1)), "{status}");
    }
    let failures = status["failures"].as_array().expect("failure reports");
    assert_eq!(failures.len(), 3, "{status}");
    for failure in failures {
        assert_eq!(failure["target"], url("/fail/1"), "{status}");
        assert!(failure["reason"].as_str().unwrap().contains("503"), "the reason names the origin's answer: {status}");
    }
    // The CLI, following the batch, exits 2 and says why.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgepurge"))
        .args([
            "status",
            &id.to_string(),
            "--watch",
            "--server",
            &format!("http://{}", cluster.api),
            "--token",
            &cluster.token,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("503"), "{}", String::from_utf8_lossy(&out.stderr));
}
