//! Policy distribution: a policy installed on control (`PUT /v1/policy`, or its `[policy]` file
//! re-read on SIGHUP) reaches every edge, which loads it and says so, and the control's edge list
//! shows which policy each edge runs.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::Value;

use crate::harness::{edge_entry, Cluster};

fn put_policy(cluster: &Cluster, bytes: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(&cluster.api).unwrap();
    let head = format!(
        "PUT /v1/policy HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {}\r\nContent-Type: application/wasm\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        cluster.token,
        bytes.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(bytes).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response)
}

fn edge_policy_name(cluster: &Cluster, i: usize) -> String {
    let response =
        crate::support::http(&cluster.edges[i].admin, "GET /policy HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str::<Value>(body).unwrap_or(Value::Null)["name"].as_str().unwrap_or("").to_owned()
}

fn shipped_policy(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../target/policies/{name}.wasm"));
    assert!(path.exists(), "run `make policies` first (make test does): {}", path.display());
    path
}

#[test]
fn the_configured_policy_reaches_every_edge_and_sighup_sends_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.wasm");
    std::fs::copy(shipped_policy("default"), &file).unwrap();
    let cluster = Cluster::builder().edges(3).control_policy(&file).build();
    for i in 0..cluster.edges.len() {
        cluster.wait_for("the edge to run control's policy", || edge_policy_name(&cluster, i) == "default");
    }
    std::fs::copy(shipped_policy("api-read-through"), &file).unwrap();
    cluster.control.as_ref().unwrap().hangup();
    for i in 0..cluster.edges.len() {
        cluster.wait_for("the edge to run the reloaded policy", || edge_policy_name(&cluster, i) == "api-read-through");
    }
}

#[test]
fn a_policy_swap_reaches_every_edge() {
    let bytes = std::fs::read(shipped_policy("static-assets")).unwrap();
    let cluster = Cluster::builder().edges(3).build();
    let (status, response) = put_policy(&cluster, &bytes);
    assert_eq!(status, 200, "{response}");
    for i in 0..cluster.edges.len() {
        cluster.wait_for("the edge to run the new policy", || edge_policy_name(&cluster, i) == "static-assets");
    }
    cluster.wait_for("control to record each edge's policy", || {
        let edges = cluster.edges_json();
        cluster
            .edges
            .iter()
            .all(|e| edge_entry(&edges, &e.name).is_some_and(|entry| entry.to_string().contains("static-assets")))
    });
    // A restarted edge gets the policy again as it reconnects.
    let mut cluster = cluster;
    cluster.kill_edge(0);
    cluster.start_edge(0);
    cluster.wait_for("the restarted edge to run the policy", || edge_policy_name(&cluster, 0) == "static-assets");
}
