//! An edge killed (`kill -9`) part-way through applying a large batch: while it is down the
//! batch is not `done` unless it had applied everything; after the restart it applies the rest
//! (nothing missed, nothing reported applied that it still serves), and the other edge was never
//! held up.

use crate::api::applied;
use crate::check::{assert_no_purged_but_served, sample, SAMPLE};
use crate::cluster::Cluster;
use crate::scale;

#[test]
fn kill_9_of_an_edge_mid_apply_catches_up_after_the_restart() {
    let Some(mut c) = Cluster::builder().build() else { return };
    let n = scale::large_batch();
    let all: Vec<String> = (0..n).map(|i| format!("/edge-kill/{i}")).collect();
    c.warm(&sample(&all, SAMPLE));
    let purge = c.purge_urls(&all);
    let at = c.wait_applied(purge.batch, "edge-2", 1);
    c.kill_edge(1);
    let killed_at = applied(&c.batch(purge.batch), "edge-2");
    eprintln!("edge-2 killed at {killed_at} of {n} applied (first seen {})", applied(&at, "edge-2"));

    // While edge-2 is down: edge-1 finishes, and what control reports applied is not served.
    let status = c.wait_applied(purge.batch, "edge-1", n as u64);
    if applied(&status, "edge-2") < n as u64 {
        assert_ne!(status["state"], "done", "done while edge-2 has not applied the batch: {status}");
    }
    assert!(assert_no_purged_but_served(&c, std::slice::from_ref(&purge)) >= SAMPLE, "edge-1 was checked");
    // More purges while it is down.
    c.warm(&["/while-down".to_owned()]);
    let later = c.purge_urls(&["/while-down".to_owned()]);

    c.start_edge(1);
    c.wait_connected();
    let status = c.wait_done(purge.batch);
    for edge in &c.edges {
        assert_eq!(applied(&status, &edge.name), n as u64, "{status}");
    }
    c.wait_done(later.batch);
    assert!(assert_no_purged_but_served(&c, &[purge, later]) >= 2 * SAMPLE);

    // The restarted edge caches and purges as before.
    c.warm(&["/after".to_owned()]);
    let after = c.purge_urls(&["/after".to_owned()]);
    c.wait_done(after.batch);
    assert_eq!(assert_no_purged_but_served(&c, &[after]), 2);
}
