//! The queue server refuses, at the TLS handshake, an edge with no certificate, one from another
//! CA, an expired one, a revoked one and one not on the allow-list; an edge connected before its
//! revocation is cut off within seconds; the others keep working.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use edgepurge_tls::certs::{self, Validity};
use edgepurge_tls::mtls::{client_config, ClientFiles};
use edgepurge_tls::rustls::{self, ClientConfig, ClientConnection, RootCertStore};
use serde_json::json;

use crate::harness::{edge_entry, Cluster};

/// Connects to the queue server with `config` and reads its first bytes: `Ok` when the server
/// accepted the client (it sends its HTTP/2 settings), else the TLS error.
fn try_connect(addr: &str, config: ClientConfig) -> Result<(), String> {
    let mut conn =
        ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buf = [0u8; 9];
    match tls.read(&mut buf) {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err("closed".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn edge_files(dir: &std::path::Path, name: &str, ca: &std::path::Path) -> ClientConfig {
    let files = certs::Layout::new(dir).edge(name);
    client_config(&ClientFiles { cert: files.cert, key: files.key, ca: ca.to_owned(), crl: None }).unwrap()
}

#[test]
fn bad_certificates_are_refused_at_the_handshake_and_good_ones_still_work() {
    let cluster = Cluster::builder().edges(3).build();
    let dir = cluster.certs.dir.clone();
    let ca = cluster.certs.ca_cert.clone();
    let addr = cluster.queue_addr.clone();

    assert_eq!(try_connect(&addr, edge_files(&dir, "edge-1", &ca)), Ok(()), "a good edge is accepted");

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
    let err = try_connect(&addr, anonymous).unwrap_err();
    assert_eq!(err, "received fatal alert: CertificateRequired", "no certificate");

    let other = tempfile::tempdir().unwrap();
    certs::init(other.path(), 1, &[], false).unwrap();
    let err = try_connect(&addr, edge_files(other.path(), "edge-1", &ca)).unwrap_err();
    // Both development CAs have the same name, so the signature check is what fails.
    assert_eq!(err, "received fatal alert: DecryptError", "another CA");

    certs::issue_edge_valid(&dir, "edge-9", Validity::days(-1)).unwrap();
    let err = try_connect(&addr, edge_files(&dir, "edge-9", &ca)).unwrap_err();
    assert_eq!(err, "received fatal alert: CertificateExpired", "expired");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgepurge"))
        .args(["certs", "revoke", "--dir"])
        .arg(&dir)
        .args(["--edge", "edge-3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The queue server re-reads the CRL without a restart (within about a second).
    cluster
        .wait_for("edge-3 refused after revocation", || try_connect(&addr, edge_files(&dir, "edge-3", &ca)).is_err());
    let err = try_connect(&addr, edge_files(&dir, "edge-3", &ca)).unwrap_err();
    assert_eq!(err, "received fatal alert: CertificateRevoked", "revoked");
    // The edge-3 process, connected before the revocation, is cut off too and cannot come back.
    cluster.wait_for("edge-3's open stream closed", || {
        edge_entry(&cluster.edges_json(), "edge-3").is_some_and(|e| e["connected"] == false)
    });
    // It still counts for progress until the operator decommissions it.
    assert_eq!(cluster.api_call("DELETE", "/v1/edges/edge-3", None).0, 200);

    certs::issue_edge(&dir, "edge-7").unwrap();
    let err = try_connect(&addr, edge_files(&dir, "edge-7", &ca)).unwrap_err();
    assert_eq!(err, "received fatal alert: CertificateUnknown", "not on the allow-list");

    // The control log says why each was refused (the line may follow the client's alert).
    let log = cluster.control.as_ref().unwrap().log.clone();
    for needle in [
        "no client certificate presented",
        "certificate signature does not verify against the configured CA",
        "certificate expired",
        "certificate revoked (listed in the CRL)",
        "edge `edge-7` is not in the queue server's allowed edges",
        "closing the stream of a connected edge whose certificate no longer passes",
    ] {
        cluster.wait_for(&format!("the control log to say `{needle}`"), || {
            std::fs::read_to_string(&log).unwrap_or_default().contains(needle)
        });
    }
    // The good edges keep working.
    assert_eq!(try_connect(&addr, edge_files(&dir, "edge-2", &ca)), Ok(()));
    let id = cluster.purge(&json!({"urls": ["http://shop.test/x"]}).to_string());
    let status = cluster.wait_done(id);
    assert_eq!(status["state"], "done");
}
