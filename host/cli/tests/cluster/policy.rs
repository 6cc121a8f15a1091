//! Policy distribution: a policy installed on control (`PUT /v1/policy`) reaches every edge,
//! which loads it and says so, and the control's edge list shows which policy each edge runs.

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

#[test]
fn a_policy_swap_reaches_every_edge() {
    let wasm = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/policies/static-assets.wasm");
    let bytes = std::fs::read(wasm).expect("run `make policies` first (make test does)");
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
