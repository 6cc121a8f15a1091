//! Unit tests of `certs`: the files it writes complete (or are refused) an in-memory mutual-TLS
//! handshake between rustls configs built with the crate's ring provider.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use tempfile::TempDir;

use super::*;

/// A control server config requiring a client certificate from the CA of `dir`, with its CRL
/// when `with_crl` (the queue server's own config).
fn control_config(layout: &Layout, with_crl: bool) -> ServerConfig {
    crate::mtls::server_config(&crate::mtls::ServerFiles {
        cert: layout.control_cert.clone(),
        key: layout.control_key.clone(),
        client_ca: layout.ca_cert.clone(),
        crl: with_crl.then(|| layout.crl.clone()),
        allowed_edges: None,
    })
    .unwrap()
}

/// An edge's client config: trusts the CA of `ca_layout`, presents `edge`.
fn edge_config(ca_layout: &Layout, edge: &EdgeFiles) -> ClientConfig {
    crate::mtls::client_config(&crate::mtls::ClientFiles {
        cert: edge.cert.clone(),
        key: edge.key.clone(),
        ca: ca_layout.ca_cert.clone(),
        crl: None,
    })
    .unwrap()
}

/// Runs a handshake in memory; the edge name the server read from the client certificate, or
/// the first error.
pub(crate) fn handshake(
    client: ClientConfig,
    server: ServerConfig,
    name: &str,
) -> Result<Option<String>, rustls::Error> {
    let mut c = ClientConnection::new(Arc::new(client), ServerName::try_from(name.to_owned()).unwrap())?;
    let mut s = ServerConnection::new(Arc::new(server))?;
    // A TLS 1.3 handshake with client auth takes a few flights; the bound only stops a broken loop.
    for _ in 0..10 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        s.read_tls(&mut buf.as_slice()).unwrap();
        s.process_new_packets()?;
        let mut buf = Vec::new();
        s.write_tls(&mut buf).unwrap();
        c.read_tls(&mut buf.as_slice()).unwrap();
        c.process_new_packets()?;
        if !c.is_handshaking() && !s.is_handshaking() {
            // In TLS 1.3 the client finishes first; push its last flight so the server verifies
            // the client certificate (or fails on it).
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets()?;
            return Ok(s.peer_certificates().and_then(|chain| edge_name(&chain[0])));
        }
    }
    panic!("handshake did not finish");
}

pub(crate) fn init_dir(edges: usize) -> (TempDir, Initialized) {
    let dir = TempDir::new().unwrap();
    let made = init(dir.path(), edges, &["control.example".to_owned()], false).unwrap();
    (dir, made)
}

#[test]
fn init_writes_every_file_and_edge_handshakes_succeed() {
    let (_dir, made) = init_dir(2);
    let names: Vec<&str> = made.edges.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["edge-1", "edge-2"]);
    for path in [&made.layout.ca_cert, &made.layout.ca_key, &made.layout.control_cert, &made.layout.crl] {
        assert!(path.exists(), "{}", path.display());
    }
    for edge in &made.edges {
        let got = handshake(edge_config(&made.layout, edge), control_config(&made.layout, true), "localhost");
        assert_eq!(got.unwrap().as_deref(), Some(edge.name.as_str()));
    }
    // The extra SAN and the IP SANs are on the control certificate.
    for name in ["control.example", "127.0.0.1", "::1"] {
        handshake(edge_config(&made.layout, &made.edges[0]), control_config(&made.layout, false), name).unwrap();
    }
}

#[cfg(unix)]
#[test]
fn keys_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, made) = init_dir(1);
    for key in [&made.layout.ca_key, &made.layout.control_key, &made.edges[0].key] {
        assert_eq!(std::fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600, "{}", key.display());
    }
}

#[test]
fn init_refuses_an_existing_ca_unless_forced() {
    let (dir, made) = init_dir(3);
    let err = init(dir.path(), 1, &[], false).unwrap_err();
    assert!(matches!(err, CertError::CaExists { .. }), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    let again = init(dir.path(), 1, &[], true).unwrap();
    // edge-2 and edge-3 belonged to the old CA: gone, not left to fail later.
    assert_eq!(again.removed.len(), 6);
    assert!(!made.layout.edge("edge-3").cert.exists());
    // edge-1 was re-issued by the new CA.
    handshake(edge_config(&again.layout, &again.edges[0]), control_config(&again.layout, true), "localhost").unwrap();
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let (_dir, ours) = init_dir(1);
    let (_other_dir, theirs) = init_dir(1);
    // The edge trusts our control certificate but presents an edge certificate of another CA.
    let client = edge_config(&ours.layout, &theirs.edges[0]);
    let err = handshake(client, control_config(&ours.layout, true), "localhost").unwrap_err();
    assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err:?}");
}

#[test]
fn issue_adds_an_edge_and_refuses_bad_or_existing_names() {
    let (dir, made) = init_dir(1);
    let files = issue_edge(dir.path(), "eu-west-7").unwrap();
    let got = handshake(edge_config(&made.layout, &files), control_config(&made.layout, true), "localhost");
    assert_eq!(got.unwrap().as_deref(), Some("eu-west-7"));
    assert!(matches!(issue_edge(dir.path(), "edge-1"), Err(CertError::EdgeExists { .. })));
    for bad in ["", "Edge", "a/b", "-a", "a-", "a.b", &"x".repeat(64)] {
        assert!(matches!(issue_edge(dir.path(), bad), Err(CertError::InvalidName { .. })), "{bad:?}");
    }
    let empty = TempDir::new().unwrap();
    let err = issue_edge(empty.path(), "edge-9").unwrap_err();
    assert!(matches!(err, CertError::NoCa { .. }) && err.to_string().contains("certs init"), "{err}");
}

#[test]
fn a_revoked_edge_is_refused_and_the_others_still_connect() {
    let (dir, made) = init_dir(2);
    let revoked = revoke_edge(dir.path(), "edge-1").unwrap();
    assert!(!revoked.serial.is_empty());
    let err = handshake(edge_config(&made.layout, &made.edges[0]), control_config(&made.layout, true), "localhost")
        .unwrap_err();
    assert!(matches!(err, rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)), "{err:?}");
    handshake(edge_config(&made.layout, &made.edges[1]), control_config(&made.layout, true), "localhost").unwrap();
    // A second revocation keeps the first one in the re-signed list.
    revoke_edge(dir.path(), "edge-2").unwrap();
    for edge in &made.edges {
        assert!(handshake(edge_config(&made.layout, edge), control_config(&made.layout, true), "localhost").is_err());
    }
    assert!(matches!(revoke_edge(dir.path(), "edge-1"), Err(CertError::AlreadyRevoked { .. })));
    assert!(matches!(revoke_edge(dir.path(), "edge-3"), Err(CertError::UnknownEdge { .. })));
}

#[test]
fn invalid_extra_san_leaves_the_directory_alone() {
    let dir = TempDir::new().unwrap();
    let err = init(dir.path(), 1, &["not a name".to_owned()], false).unwrap_err();
    assert!(matches!(err, CertError::InvalidSan { .. }), "{err}");
    assert!(!Layout::new(dir.path()).ca_cert.exists());
}
