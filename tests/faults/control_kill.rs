//! Control killed (`kill -9`) or stopped (SIGTERM) at each step of a purge: after the `202`,
//! during the fan-out of a large batch, during the upload. A batch that got its `202` is
//! applied everywhere after the restart; one whose upload was cut off is not there at all;
//! nothing is reported applied while an edge still serves the old object.

use std::io::Write;
use std::net::TcpStream;

use serde_json::json;

use crate::api::applied;
use crate::check::{assert_no_purged_but_served, sample, SAMPLE};
use crate::cluster::Cluster;
use crate::scale;

fn paths(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("/{prefix}/{i}")).collect()
}

#[test]
fn kill_9_of_control_after_the_202_loses_nothing() {
    let Some(mut c) = Cluster::builder().build() else { return };
    let all = paths("after-202", 200);
    c.warm(&sample(&all, SAMPLE));
    let purge = c.purge_urls(&all);
    // At once: the edges may not have been sent anything yet.
    c.kill_control();
    c.start_control();
    c.wait_connected();
    let status = c.wait_done(purge.batch);
    for edge in &c.edges {
        assert_eq!(applied(&status, &edge.name), 200, "{status}");
    }
    assert!(assert_no_purged_but_served(&c, &[purge]) >= 2 * SAMPLE);
}

#[test]
fn kill_9_of_control_during_the_fan_out_of_a_large_batch() {
    let Some(mut c) = Cluster::builder().build() else { return };
    let n = scale::large_batch();
    let all = paths("fan-out", n);
    c.warm(&sample(&all, SAMPLE));
    let purge = c.purge_urls(&all);
    // Kill as soon as an edge applied part of the batch (the kill may still land after the
    // end on a fast machine; the checks hold wherever it lands).
    let before = c.wait_applied(purge.batch, "edge-1", 1);
    eprintln!("killing control at {} of {n} applied on edge-1", applied(&before, "edge-1"));
    c.kill_control();
    // The edges keep serving while control is away.
    assert_eq!(c.get(0, "/not-purged").status, 200);
    c.start_control();
    c.wait_connected();
    let status = c.wait_done(purge.batch);
    for edge in &c.edges {
        assert_eq!(applied(&status, &edge.name), n as u64, "{status}");
    }
    assert!(assert_no_purged_but_served(&c, &[purge]) >= 2 * SAMPLE);
}

#[test]
fn kill_9_of_control_during_the_upload_leaves_no_partial_batch() {
    let Some(mut c) = Cluster::builder().build() else { return };
    let host = "upload.test";
    let n = scale::large_batch();
    let body: String = (0..n).map(|i| format!("http://{host}/u/{i}\n")).collect();
    let mut stream = TcpStream::connect(&c.api).unwrap();
    let head = format!(
        "POST /v1/purges HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        c.token,
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body.as_bytes()[..body.len() / 2]).unwrap();
    stream.flush().unwrap();
    // Half the body is on its way: the kill lands mid-upload.
    std::thread::sleep(std::time::Duration::from_millis(200));
    c.kill_control();
    // The rest goes nowhere (or into a dead socket's buffer).
    let _ = stream.write_all(&body.as_bytes()[body.len() / 2..]);
    drop(stream);
    c.start_control();
    let (code, page) = c.api("GET", &format!("/v1/records?host={host}&limit=1"), None);
    assert_eq!(code, 200, "{page}");
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(0), "a half-uploaded batch left records: {page}");
    // Control accepts and delivers after the restart.
    c.wait_connected();
    let again = c.purge_urls(&["/after-upload".to_owned()]);
    c.wait_done(again.batch);
}

#[test]
fn graceful_restart_of_control_mid_batch() {
    let Some(mut c) = Cluster::builder().build() else { return };
    let n = scale::pick(5_000, 50_000);
    let all = paths("graceful", n);
    c.warm(&sample(&all, SAMPLE));
    let purge = c.purge_urls(&all);
    c.wait_applied(purge.batch, "edge-2", 1);
    let exit = c.terminate_control();
    assert!(exit.success(), "SIGTERM: control exited with {exit}");
    c.start_control();
    c.wait_connected();
    let status = c.wait_done(purge.batch);
    for edge in &c.edges {
        assert_eq!(applied(&status, &edge.name), n as u64, "{status}");
    }
    assert!(assert_no_purged_but_served(&c, &[purge]) >= 2 * SAMPLE);
    // Each edge resumed where it was: nothing of the batch was sent to it twice.
    for i in 0..c.edges.len() {
        let duplicates = c.edge_metric(i, "edgepurge_control_duplicates_total");
        eprintln!("{}: {duplicates} duplicate tasks after the graceful restart", c.edges[i].name);
    }
    let fresh = c.purge(&json!({"urls": [crate::api::url("/fresh")]}));
    c.wait_done(fresh);
}
