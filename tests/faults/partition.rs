//! A partition between one edge and control, through a TCP proxy in the test: paused (the
//! connection stays open and goes silent) or cut (closed, reconnects refused). While it lasts
//! the partitioned edge's progress stays un-applied — the batch is not `done`, control reports
//! nothing applied there, and the edge serves what it has — and the other edge applies at once;
//! after healing, the partitioned edge applies the purge and nothing purged is served.

use crate::api::applied;
use crate::check::{assert_no_purged_but_served, sample, SAMPLE};
use crate::cluster::Cluster;
use crate::proxy::Proxy;
use crate::scale;

fn partition_and_heal(start: fn(&Proxy), what: &str) {
    // Two queues: the batch spreads over both, and both must wait for the partitioned edge.
    let Some(c) = Cluster::builder().queues(2).proxies().build() else { return };
    let n = scale::pick(1_000, 20_000);
    let all: Vec<String> = (0..n).map(|i| format!("/partition/{i}")).collect();
    let checked = sample(&all, SAMPLE);
    c.warm(&checked);
    let proxy = c.edges[1].partition.as_ref().unwrap();
    start(proxy);
    let purge = c.purge_urls(&all);
    let status = c.wait_applied(purge.batch, "edge-1", n as u64);
    assert_eq!(applied(&status, "edge-2"), 0, "{what}: edge-2 applied through the partition: {status}");
    assert_ne!(status["state"], "done", "{what}: done without edge-2: {status}");
    assert_eq!(assert_no_purged_but_served(&c, std::slice::from_ref(&purge)), SAMPLE, "{what}: edge-1 only");
    // The partition held: edge-2 still serves the old objects, and is not reported applied.
    let reply = c.get(1, &checked[0]);
    assert!(reply.is_hit() && reply.version() <= Some(purge.old), "{what}: {reply:?}");

    assert!(proxy.connections() >= 1, "{what}: edge-2 went through the proxy");
    proxy.heal();
    c.wait_connected();
    let status = c.wait_done(purge.batch);
    assert_eq!(applied(&status, "edge-2"), n as u64, "{status}");
    assert_eq!(assert_no_purged_but_served(&c, &[purge]), 2 * SAMPLE, "{what}");
}

#[test]
fn a_paused_partition_holds_progress_back_until_it_heals() {
    partition_and_heal(Proxy::pause, "paused");
}

#[test]
fn a_cut_partition_holds_progress_back_until_it_heals() {
    partition_and_heal(Proxy::cut, "cut");
}
