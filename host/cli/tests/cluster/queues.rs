//! S0.2 end to end: a queue whose delivery is stuck on every edge (a warm task waiting on a slow
//! origin) becomes unhealthy, and new purges flow through the other queues meanwhile.

use serde_json::{json, Value};

use crate::harness::Cluster;

fn unhealthy(queues: &Value) -> Vec<u64> {
    let list = queues.as_array().or_else(|| queues["queues"].as_array()).cloned().unwrap_or_default();
    list.iter().filter(|q| q["healthy"] == false).filter_map(|q| q["queue"].as_u64()).collect()
}

#[test]
fn a_stuck_queue_is_avoided_and_purges_flow_through_the_others() {
    let cluster = Cluster::builder().edges(3).queues(3).stall_after_ms(1_500).build();
    let stuck = cluster.purge(&json!({"urls": ["http://shop.test/slow/1"], "warm": true}).to_string());
    let status = cluster.api_call("GET", &format!("/v1/purges/{stuck}"), None).1;
    let stuck_queue = status["queues"][0]["queue"].as_u64().expect("the warm task's queue");
    // Other queues progress while it does not, until the monitor calls it stalled.
    let mut n = 0;
    cluster.wait_for("the stuck queue to be reported unhealthy", || {
        n += 1;
        // Not waited for: one may land on the stuck queue before the monitor notices.
        cluster.purge(&json!({"urls": [format!("http://shop.test/fill/{n}")]}).to_string());
        std::thread::sleep(std::time::Duration::from_millis(200));
        unhealthy(&cluster.api_call("GET", "/v1/queues", None).1).contains(&stuck_queue)
    });
    for i in 0..20 {
        let id = cluster.purge(&json!({"urls": [format!("http://shop.test/after/{i}")]}).to_string());
        let status = cluster.wait_done(id);
        let queue = status["queues"][0]["queue"].as_u64().unwrap();
        assert_ne!(queue, stuck_queue, "a new task went to the unhealthy queue: {status}");
    }
    let status = cluster.api_call("GET", &format!("/v1/purges/{stuck}"), None).1;
    assert_ne!(status["state"], "done", "the warm task is still waiting on the slow origin: {status}");
}
