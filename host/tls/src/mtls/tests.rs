//! Unit tests of `mtls`: in-memory handshakes between the queue server's and an edge's configs —
//! the allow-list, expired certificates, and files reloaded without a restart.

use std::time::Duration;

use super::*;
use crate::certs::tests::{handshake, init_dir};
use crate::certs::{issue_edge_valid, revoke_edge, Layout, Validity};

fn server_files(layout: &Layout, allowed: Option<&[&str]>) -> ServerFiles {
    ServerFiles {
        cert: layout.control_cert.clone(),
        key: layout.control_key.clone(),
        client_ca: layout.ca_cert.clone(),
        crl: Some(layout.crl.clone()),
        allowed_edges: allowed.map(|names| names.iter().map(|n| n.to_string()).collect()),
    }
}

fn client_files(layout: &Layout, edge: &str) -> ClientFiles {
    let files = layout.edge(edge);
    ClientFiles { cert: files.cert, key: files.key, ca: layout.ca_cert.clone(), crl: None }
}

/// The edge name the server read, or the operator's reason for the refusal.
fn connect(server: &ReloadingServerConfig, layout: &Layout, edge: &str) -> Result<Option<String>, String> {
    let client = client_config(&client_files(layout, edge)).unwrap();
    handshake(client, (*server.current()).clone(), "localhost").map_err(|e| Refusal::of(&e).to_string())
}

#[test]
fn only_allowed_edges_complete_the_handshake() {
    let (_dir, made) = init_dir(2);
    let server = ReloadingServerConfig::new(server_files(&made.layout, Some(&["edge-1"]))).unwrap();
    assert_eq!(connect(&server, &made.layout, "edge-1").unwrap().as_deref(), Some("edge-1"));
    let err = connect(&server, &made.layout, "edge-2").unwrap_err();
    assert_eq!(err, "edge `edge-2` is not in the queue server's allowed edges");
}

#[test]
fn an_expired_certificate_is_refused() {
    let (dir, made) = init_dir(0);
    issue_edge_valid(dir.path(), "old", Validity::days(-1)).unwrap();
    let server = ReloadingServerConfig::new(server_files(&made.layout, None)).unwrap();
    let err = connect(&server, &made.layout, "old").unwrap_err().to_string();
    assert_eq!(err, "certificate expired");
}

#[test]
fn a_new_crl_applies_without_a_restart_and_a_broken_one_keeps_the_old() {
    let (dir, made) = init_dir(2);
    let server = ReloadingServerConfig::new(server_files(&made.layout, None)).unwrap();
    assert!(connect(&server, &made.layout, "edge-1").is_ok());
    revoke_edge(dir.path(), "edge-1").unwrap();
    // Within RECHECK the old config may still be served; after it, the new CRL must be.
    std::thread::sleep(RECHECK + Duration::from_millis(50));
    let err = connect(&server, &made.layout, "edge-1").unwrap_err();
    assert_eq!(err, "certificate revoked (listed in the CRL)");
    assert!(connect(&server, &made.layout, "edge-2").is_ok());

    std::fs::write(&made.layout.crl, "not a crl").unwrap();
    std::thread::sleep(RECHECK + Duration::from_millis(50));
    let err = connect(&server, &made.layout, "edge-1").unwrap_err();
    assert_eq!(err, "certificate revoked (listed in the CRL)", "the previous CRL keeps applying");
}

#[test]
fn missing_files_are_named_and_a_wrong_ca_fails_the_handshake() {
    let (_dir, made) = init_dir(1);
    let mut files = server_files(&made.layout, None);
    files.crl = Some(made.layout.dir.join("nope.pem"));
    let err = ReloadingServerConfig::new(files).err().unwrap().to_string();
    assert!(err.contains("nope.pem"), "{err}");
    // An edge trusting another CA cannot verify control's certificate.
    let (_other_dir, other) = init_dir(0);
    let mut client = client_files(&made.layout, "edge-1");
    client.ca = other.layout.ca_cert.clone();
    let server = ReloadingServerConfig::new(server_files(&made.layout, None)).unwrap();
    let err = handshake(client_config(&client).unwrap(), (*server.current()).clone(), "localhost").unwrap_err();
    // The other development CA has the same name, so webpki finds the issuer and the signature
    // fails.
    assert_eq!(
        Refusal::of(&err).to_string(),
        "certificate signature does not verify against the configured CA (issued by another CA?)"
    );
}

#[test]
fn a_connected_client_is_rechecked_against_new_files() {
    let (dir, made) = init_dir(2);
    let server = ReloadingServerConfig::new(server_files(&made.layout, None)).unwrap();
    let chain = crate::load_certs(&made.layout.edge("edge-1").cert).unwrap();
    assert_eq!(server.check_client(&chain), Ok(()));
    revoke_edge(dir.path(), "edge-1").unwrap();
    std::thread::sleep(RECHECK + Duration::from_millis(50));
    assert_eq!(server.check_client(&chain), Err(Refusal::Revoked));
    assert_eq!(server.check_client(&crate::load_certs(&made.layout.edge("edge-2").cert).unwrap()), Ok(()));
    assert_eq!(server.check_client(&[]), Err(Refusal::NoCertificate));
    let plain =
        ReloadingServerConfig::without_client_auth(&made.layout.control_cert, &made.layout.control_key).unwrap();
    assert_eq!(plain.check_client(&chain), Ok(()), "no client authentication, nothing to check");
}
