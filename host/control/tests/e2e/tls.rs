//! The API over TLS (rustls through `edgepurge-tls`, HTTP/2 by ALPN), with a certificate from a
//! private rcgen CA for `127.0.0.1`; and plain HTTP refused off loopback.

use std::sync::Arc;

use bytes::Bytes;
use edgepurge_control::api::router;
use edgepurge_control::auth::create_token;
use edgepurge_control::config::ControlConfig;
use edgepurge_control::health::system_clock;
use edgepurge_control::server::{BoundControl, StartError};
use edgepurge_control::state::AppState;
use edgepurge_control_store::SqliteStore;
use edgepurge_policy_runtime::LoadedPolicy;
use edgepurge_tls::rustls::pki_types::ServerName;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio_rustls::TlsConnector;

#[tokio::test]
async fn the_api_serves_http2_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    let (ca_file, cert_file, key_file) =
        (dir.path().join("ca.pem"), dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert_file, leaf.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();

    let db = dir.path().join("control.db");
    let config = ControlConfig::parse(&format!(
        "listen = \"127.0.0.1:0\"\ndatabase = {db:?}\n[rate-limit]\nburst = 10\nper-second = 1.0\n\
         [tls]\ncert = {cert_file:?}\nkey = {key_file:?}"
    ))
    .unwrap();
    let store = SqliteStore::open(&db, 4).unwrap();
    let token = create_token(&store, "t", &["a.com".into()], false, 0).await.unwrap();
    let state = AppState::new(store, LoadedPolicy::builtin(Default::default()), &config, system_clock());
    let bound = BoundControl::bind(&config, router(Arc::new(state))).await.unwrap();
    assert!(bound.is_tls());
    let addr = bound.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(async move {
        let _ = stopped.await;
    }));

    let connector = TlsConnector::from(Arc::new(edgepurge_tls::client_config(&[&ca_file]).unwrap()));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector.connect(ServerName::try_from("127.0.0.1").unwrap(), tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(edgepurge_tls::ALPN_H2));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post(format!("https://{addr}/v1/purges"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(r#"{"urls": ["https://a.com/x"]}"#)))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 202);
    let body: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["tasks"], 1);
    drop(send);
    stop.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn plain_http_off_loopback_is_refused_at_bind() {
    let mut config = ControlConfig::parse("listen = \"127.0.0.1:0\"\ndatabase = \"x.db\"").unwrap();
    config.listen = "0.0.0.0:0".parse().unwrap();
    let err = BoundControl::bind(&config, axum::Router::new()).await.err().expect("refused");
    assert!(matches!(err, StartError::PlainOffLoopback(_)), "{err}");
    assert!(err.to_string().contains("[tls]"));
}
