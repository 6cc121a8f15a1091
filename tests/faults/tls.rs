//! Mutual-TLS negatives at the queue server: no client certificate, a certificate of another CA
//! with the same name, an expired one, one not valid yet, one not on the allow-list — each is
//! refused at the handshake, counted in control's `/metrics` under its reason and logged in an
//! operator's words. An edge whose certificate expired never gets a purge reported applied: the
//! batch waits for it, and is applied once it has a valid certificate again.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use edgepurge_tls::certs::{self, Validity};
use edgepurge_tls::mtls::{client_config, ClientFiles};
use edgepurge_tls::rustls::{self, ClientConfig, ClientConnection, RootCertStore};

use crate::api::applied;
use crate::check::assert_no_purged_but_served;
use crate::cluster::Cluster;

/// Opens a TLS connection to the queue server with `config` and reads its first bytes: `Ok`
/// when it accepted the client (it sends its HTTP/2 settings), else the TLS error.
fn try_connect(addr: &str, config: ClientConfig) -> Result<(), String> {
    let mut conn =
        ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buf = [0u8; 9];
    match tls.read(&mut buf) {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err("closed".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A client config presenting edge `name`'s files from certificate directory `dir`.
fn as_edge(dir: &Path, name: &str, ca: &Path) -> ClientConfig {
    let files = certs::Layout::new(dir).edge(name);
    client_config(&ClientFiles { cert: files.cert, key: files.key, ca: ca.to_owned(), crl: None }).unwrap()
}

/// Valid from tomorrow until the day after.
fn not_yet_valid() -> Validity {
    Validity { not_before: Validity::days(1).not_after, not_after: Validity::days(2).not_after }
}

fn refused(c: &Cluster, reason: &str) -> f64 {
    c.control_metric(&format!("edgepurge_control_queue_handshakes_refused_total{{reason=\"{reason}\"}}"))
}

#[test]
fn bad_client_certificates_are_refused_at_the_handshake_and_counted_by_reason() {
    let Some(c) = Cluster::builder().build() else { return };
    let (dir, ca, addr) = (c.certs.dir.clone(), c.certs.ca_cert.clone(), c.queue.clone());
    assert_eq!(try_connect(&addr, as_edge(&dir, "edge-1", &ca)), Ok(()), "a good certificate is accepted");

    let mut roots = RootCertStore::empty();
    for cert in edgepurge_tls::load_certs(&ca).unwrap() {
        roots.add(cert).unwrap();
    }
    let mut anonymous = ClientConfig::builder_with_provider(edgepurge_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    anonymous.alpn_protocols = vec![b"h2".to_vec()];
    // A second development CA has the same name as the first: only the signature tells them apart.
    let other = tempfile::tempdir().unwrap();
    certs::init(other.path(), 1, &[], false).unwrap();
    certs::issue_edge_valid(&dir, "edge-8", Validity::days(-1)).unwrap();
    certs::issue_edge_valid(&dir, "edge-9", not_yet_valid()).unwrap();
    certs::issue_edge(&dir, "edge-7").unwrap();

    let cases: [(&str, ClientConfig, &str, &str); 5] = [
        ("no certificate", anonymous, "no_certificate", "no client certificate presented"),
        (
            "another CA of the same name",
            as_edge(other.path(), "edge-1", &ca),
            "bad_signature",
            "certificate signature does not verify against the configured CA",
        ),
        ("expired", as_edge(&dir, "edge-8", &ca), "expired", "certificate expired"),
        ("not valid yet", as_edge(&dir, "edge-9", &ca), "not_valid_yet", "certificate not valid yet"),
        (
            "not on the allow-list",
            as_edge(&dir, "edge-7", &ca),
            "not_allowed",
            "edge `edge-7` is not in the queue server's allowed edges",
        ),
    ];
    let log = c.control.as_ref().unwrap().log.clone();
    for (what, config, reason, says) in cases {
        let before = refused(&c, reason);
        let err = try_connect(&addr, config).expect_err(what);
        assert!(err.contains("alert") || err.contains("closed"), "{what}: refused at the handshake, got {err}");
        c.wait_for(&format!("{what}: counted as {reason}"), || refused(&c, reason) > before);
        c.wait_for(&format!("{what}: control logs `{says}`"), || {
            std::fs::read_to_string(&log).unwrap_or_default().contains(says)
        });
    }
    // The good edges kept working.
    assert_eq!(try_connect(&addr, as_edge(&dir, "edge-2", &ca)), Ok(()));
    c.warm(&["/tls-ok".to_owned()]);
    let purge = c.purge_urls(&["/tls-ok".to_owned()]);
    c.wait_done(purge.batch);
    assert_eq!(assert_no_purged_but_served(&c, &[purge]), 2);
}

#[test]
fn an_edge_with_an_expired_certificate_gets_nothing_reported_applied() {
    let Some(mut c) = Cluster::builder().build() else { return };
    // edge-2 restarts with an expired certificate under its own name.
    c.kill_edge(1);
    let files = c.certs.edge("edge-2");
    for f in [&files.cert, &files.key] {
        std::fs::remove_file(f).unwrap();
    }
    certs::issue_edge_valid(&c.certs.dir, "edge-2", Validity::days(-1)).unwrap();
    let before = refused(&c, "expired");
    c.start_edge(1);
    c.wait_for("edge-2's expired certificate refused", || refused(&c, "expired") > before);
    // Cached on both (edge-2 serves without control).
    c.warm(&["/expired".to_owned()]);

    let purge = c.purge_urls(&["/expired".to_owned()]);
    let status = c.wait_applied(purge.batch, "edge-1", 1);
    assert_eq!(applied(&status, "edge-2"), 0, "{status}");
    assert_ne!(status["state"], "done", "done without edge-2: {status}");
    // edge-1 was checked; edge-2 still serves the old object, and nothing says otherwise.
    assert_eq!(assert_no_purged_but_served(&c, std::slice::from_ref(&purge)), 1);
    assert!(c.get(1, "/expired").is_hit(), "edge-2 is cut off from control, so it serves what it has");

    // A valid certificate again: the purge reaches it.
    c.kill_edge(1);
    for f in [&files.cert, &files.key] {
        std::fs::remove_file(f).unwrap();
    }
    certs::issue_edge(&c.certs.dir, "edge-2").unwrap();
    c.start_edge(1);
    c.wait_connected();
    c.wait_done(purge.batch);
    assert_eq!(assert_no_purged_but_served(&c, &[purge]), 2);
}
