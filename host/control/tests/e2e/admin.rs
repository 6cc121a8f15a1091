//! Admin operations: replacing the policy that selects queues (`PUT /v1/policy`, admin only,
//! validated before it is installed) and decommissioning an edge (`DELETE /v1/edges/{name}`).

use edgepurge_control_store::RecordStore;
use serde_json::json;

use crate::support::ControlTest;

fn wasm(dir: &str, name: &str) -> Vec<u8> {
    let path = format!("{}/../../target/{dir}/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}; run `make policies` first"))
}

#[tokio::test]
async fn only_admins_replace_the_policy_and_a_refused_one_changes_nothing() {
    let c = ControlTest::new().start().await.unwrap();
    let user = c.token("user", &["a.com"], false).await;
    let admin = c.token("admin", &[], true).await;
    let r = c.send("GET", "/v1/policy", Some(&user), &[], "").await;
    assert_eq!((r.status, r.json["name"].as_str()), (200, Some("builtin")), "{r:?}");

    let r = c.send("PUT", "/v1/policy", Some(&user), &[], wasm("policies", "default")).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(String::from_utf8_lossy(&r.body).contains("admin"), "{r:?}");
    let r = c.send("PUT", "/v1/policy", None, &[], wasm("policies", "default")).await;
    assert_eq!(r.status, 401);

    let r = c.send("PUT", "/v1/policy", Some(&admin), &[], wasm("policies", "default")).await;
    assert_eq!((r.status, r.json["name"].as_str()), (200, Some("default")), "{r:?}");
    for refused in [wasm("fixtures", "forbidden-sockets"), b"not a component".to_vec()] {
        let r = c.send("PUT", "/v1/policy", Some(&admin), &[], refused).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(String::from_utf8_lossy(&r.body).contains("keeps selecting queues"), "{r:?}");
    }
    let r = c.send("GET", "/v1/policy", Some(&user), &[], "").await;
    assert_eq!(r.json["name"], "default");
    // Submissions go on through the new policy.
    assert_eq!(c.purge(&user, json!({"urls": ["http://a.com/x"]})).await.status, 202);
    c.stop().await;
}

#[tokio::test]
async fn a_decommissioned_edge_stops_counting_for_progress() {
    let c = ControlTest::new().start().await.unwrap();
    c.store.register_edge("edge-1", 0).await.unwrap();
    c.store.register_edge("edge-2", 0).await.unwrap();
    let user = c.token("user", &["a.com"], false).await;
    let admin = c.token("admin", &[], true).await;
    let r = c.purge(&user, json!({"urls": ["http://a.com/1"]})).await;
    let path = format!("/v1/purges/{}", r.json["id"]);
    let queue = c.send("GET", &path, Some(&user), &[], "").await.json["queues"][0].clone();
    let (q, last) = (queue["queue"].as_u64().unwrap() as u32, queue["last"].as_u64().unwrap());
    c.store.set_watermark("edge-1", q, last, 1).await.unwrap();
    assert_eq!(c.send("GET", &path, Some(&user), &[], "").await.json["state"], "in-progress");

    assert_eq!(c.send("DELETE", "/v1/edges/edge-2", Some(&user), &[], "").await.status, 403);
    assert_eq!(c.send("DELETE", "/v1/edges/nowhere", Some(&admin), &[], "").await.status, 404);
    let r = c.send("DELETE", "/v1/edges/edge-2", Some(&admin), &[], "").await;
    assert_eq!((r.status, r.json["edge"].as_str()), (200, Some("edge-2")), "{r:?}");
    let s = c.send("GET", &path, Some(&user), &[], "").await;
    assert_eq!(s.json["state"], "done", "{s:?}");
    c.stop().await;
}
