//! Mutual TLS for the queue transport: the control role's queue server requires a client
//! certificate from the configured CA (not revoked by the CRL, and optionally from an allow-list
//! of edge names); the edge presents its certificate and verifies the control's.
//!
//! Both sides hold a *reloading* config: [`ReloadingServerConfig::current`] and
//! [`ReloadingClientConfig::current`] look at the files' modification times (at most once per
//! [`RECHECK`]) and rebuild the config when one changed, so a renewed certificate or a new CRL
//! applies to the next handshake without a restart. A file that fails to load keeps the previous
//! config serving and is logged, naming the file and the problem, so a half-written renewal
//! cannot take the transport down.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore, ServerConfig,
    ServerConnection, SignatureScheme,
};

use crate::{cert_rejected, load_certs, load_key, provider, read, roots_with, TlsError, ALPN_H2};

/// How often the files are looked at for changes, at most.
pub const RECHECK: Duration = Duration::from_secs(1);

/// The files of the queue server's TLS: its certificate and key, the CA its clients' certificates
/// must chain to, the CA's CRL, and which edge names may connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFiles {
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA certificate(s) client certificates must chain to (PEM).
    pub client_ca: PathBuf,
    /// The CA's certificate revocation list (PEM), if any.
    pub crl: Option<PathBuf>,
    /// Edge names (see [`crate::certs::edge_name`]) allowed to connect; `None` allows every edge
    /// whose certificate the CA signed.
    pub allowed_edges: Option<Vec<String>>,
}

/// The files of an edge's TLS towards control: its certificate and key, the CA that signed the
/// control's certificate, and optionally that CA's CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFiles {
    /// The edge's certificate chain (PEM); its name is its identity.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA certificate(s) the control's certificate must chain to (PEM).
    pub ca: PathBuf,
    /// The CA's certificate revocation list (PEM), if any.
    pub crl: Option<PathBuf>,
}

/// The queue server's config, rebuilt when its files change.
#[derive(Clone)]
pub struct ReloadingServerConfig {
    inner: Arc<Reloading<ServerBundle>>,
}

/// A server config and the client verifier inside it (kept to re-check connected clients).
struct ServerBundle {
    config: Arc<ServerConfig>,
    verifier: Option<Arc<EdgeVerifier>>,
}

impl ReloadingServerConfig {
    /// Loads the files; errors name the file and the problem.
    pub fn new(files: ServerFiles) -> Result<Self, TlsError> {
        let paths =
            [Some(files.cert.clone()), Some(files.key.clone()), Some(files.client_ca.clone()), files.crl.clone()];
        let build = move || {
            let (config, verifier) = server_bundle(&files)?;
            Ok(ServerBundle { config: Arc::new(config), verifier: Some(verifier) })
        };
        Ok(Self { inner: Arc::new(Reloading::new(paths.into_iter().flatten().collect(), Box::new(build))?) })
    }

    /// A server without client authentication (the control API, the edge's TLS listener): the
    /// chain in `cert` with the key in `key`, ALPN `h2` and `http/1.1`
    /// ([`crate::server_config`]), rebuilt when either file changes.
    pub fn without_client_auth(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let (cert, key) = (cert.to_owned(), key.to_owned());
        let paths = vec![cert.clone(), key.clone()];
        let build = move || Ok(ServerBundle { config: Arc::new(crate::server_config(&cert, &key)?), verifier: None });
        Ok(Self { inner: Arc::new(Reloading::new(paths, Box::new(build))?) })
    }

    /// The config for the next handshake (rebuilt first if a file changed).
    pub fn current(&self) -> Arc<ServerConfig> {
        self.inner.current().config.clone()
    }

    /// Checks a connected client's certificate `chain` (leaf first, as the handshake saw it)
    /// against the current files: a certificate revoked, expired or taken off the allow-list
    /// since its handshake is refused now, so its connection can be closed. Always `Ok` without
    /// client authentication.
    pub fn check_client(&self, chain: &[CertificateDer<'static>]) -> Result<(), Refusal> {
        let Some(verifier) = self.inner.current().verifier.clone() else { return Ok(()) };
        let Some((leaf, intermediates)) = chain.split_first() else { return Err(Refusal::NoCertificate) };
        verifier.verify_client_cert(leaf, intermediates, UnixTime::now()).map(|_| ()).map_err(|e| Refusal::of(&e))
    }
}

/// An edge's client config towards control, rebuilt when its files change.
#[derive(Clone)]
pub struct ReloadingClientConfig {
    inner: Arc<Reloading<ClientConfig>>,
}

impl ReloadingClientConfig {
    /// Loads the files; errors name the file and the problem.
    pub fn new(files: ClientFiles) -> Result<Self, TlsError> {
        let paths = [Some(files.cert.clone()), Some(files.key.clone()), Some(files.ca.clone()), files.crl.clone()];
        let build = move || client_config(&files);
        Ok(Self { inner: Arc::new(Reloading::new(paths.into_iter().flatten().collect(), Box::new(build))?) })
    }

    /// The config for the next connection (rebuilt first if a file changed).
    pub fn current(&self) -> Arc<ClientConfig> {
        self.inner.current()
    }
}

/// The edge name in the verified client certificate of `conn` (after the handshake).
pub fn peer_edge_name(conn: &ServerConnection) -> Option<String> {
    conn.peer_certificates()?.first().and_then(crate::certs::edge_name)
}

/// The queue server's config: its certificate, a client certificate required from `client_ca`
/// and checked against the CRL and the allow-list; ALPN `h2` only (the transport is HTTP/2).
pub fn server_config(files: &ServerFiles) -> Result<ServerConfig, TlsError> {
    server_bundle(files).map(|(config, _)| config)
}

/// [`server_config`] and the verifier it holds.
fn server_bundle(files: &ServerFiles) -> Result<(ServerConfig, Arc<EdgeVerifier>), TlsError> {
    let roots = roots_with(RootCertStore::empty(), &[&files.client_ca])?;
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
    if let Some(crl) = &files.crl {
        builder = builder.with_crls(load_crls(crl)?);
    }
    let webpki =
        builder.build().map_err(|e| TlsError::BadCa { path: files.client_ca.clone(), message: e.to_string() })?;
    let verifier = Arc::new(EdgeVerifier { webpki, allowed: files.allowed_edges.clone() });
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Provider(e.to_string()))?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .map_err(|e| cert_rejected(&files.cert, &files.key, e))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok((config, verifier))
}

/// An edge's config towards control: trusts only `ca` (checked against the CRL), presents the
/// edge's certificate; ALPN `h2` only.
pub fn client_config(files: &ClientFiles) -> Result<ClientConfig, TlsError> {
    let roots = roots_with(RootCertStore::empty(), &[&files.ca])?;
    let mut builder = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider());
    if let Some(crl) = &files.crl {
        builder = builder.with_crls(load_crls(crl)?);
    }
    let verifier = builder.build().map_err(|e| TlsError::BadCa { path: files.ca.clone(), message: e.to_string() })?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Provider(e.to_string()))?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .map_err(|e| cert_rejected(&files.cert, &files.key, e))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// Every CRL in a PEM file (at least one).
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = read("CRL", path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Crl { path: path.to_owned(), message: e.to_string() })?;
    if crls.is_empty() {
        return Err(TlsError::Crl { path: path.to_owned(), message: "the file holds no CRL".into() });
    }
    Ok(crls)
}

/// Why the queue server refused a client at the handshake: the log line says it in an
/// operator's words ([`fmt::Display`]), the metric counts it by [`Refusal::label`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The client presented no certificate.
    NoCertificate,
    /// The certificate does not chain to the configured CA.
    UnknownCa,
    /// The certificate names the CA but its signature does not verify (another CA of the same
    /// name, such as a second development CA).
    BadSignature,
    /// The CRL lists the certificate.
    Revoked,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet.
    NotValidYet,
    /// A valid certificate for an edge that is not on the allow-list.
    NotAllowed(String),
    /// Anything else (the rustls or I/O error as text).
    Other(String),
}

impl Refusal {
    /// Classifies a rustls handshake error.
    pub fn of(err: &rustls::Error) -> Refusal {
        use rustls::Error as E;
        match err {
            E::NoCertificatesPresented => Refusal::NoCertificate,
            E::InvalidCertificate(e) => match e {
                CertificateError::UnknownIssuer => Refusal::UnknownCa,
                CertificateError::BadSignature => Refusal::BadSignature,
                CertificateError::Revoked => Refusal::Revoked,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => Refusal::Expired,
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => Refusal::NotValidYet,
                CertificateError::Other(other) => match other.0.downcast_ref::<NotAllowed>() {
                    Some(NotAllowed(name)) => Refusal::NotAllowed(name.clone()),
                    None => Refusal::Other(other.to_string()),
                },
                other => Refusal::Other(format!("invalid certificate: {other:?}")),
            },
            other => Refusal::Other(other.to_string()),
        }
    }

    /// Classifies the I/O error tokio-rustls returns (which wraps the rustls error).
    pub fn of_io(err: &std::io::Error) -> Refusal {
        match err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(tls) => Refusal::of(tls),
            None => Refusal::Other(err.to_string()),
        }
    }

    /// A short label for metrics: `no_certificate`, `unknown_ca`, `bad_signature`, `revoked`,
    /// `expired`, `not_valid_yet`, `not_allowed` or `other` ([`Refusal::LABELS`]).
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::NoCertificate => "no_certificate",
            Refusal::UnknownCa => "unknown_ca",
            Refusal::BadSignature => "bad_signature",
            Refusal::Revoked => "revoked",
            Refusal::Expired => "expired",
            Refusal::NotValidYet => "not_valid_yet",
            Refusal::NotAllowed(_) => "not_allowed",
            Refusal::Other(_) => "other",
        }
    }

    /// Every value [`Refusal::label`] returns.
    pub const LABELS: [&'static str; 8] = [
        "no_certificate",
        "unknown_ca",
        "bad_signature",
        "revoked",
        "expired",
        "not_valid_yet",
        "not_allowed",
        "other",
    ];
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoCertificate => f.write_str("no client certificate presented"),
            Refusal::UnknownCa => f.write_str("certificate not signed by the configured CA (unknown issuer)"),
            Refusal::BadSignature => {
                f.write_str("certificate signature does not verify against the configured CA (issued by another CA?)")
            }
            Refusal::Revoked => f.write_str("certificate revoked (listed in the CRL)"),
            Refusal::Expired => f.write_str("certificate expired"),
            Refusal::NotValidYet => f.write_str("certificate not valid yet (check the clocks)"),
            Refusal::NotAllowed(name) => fmt::Display::fmt(&NotAllowed(name.clone()), f),
            Refusal::Other(message) => f.write_str(message),
        }
    }
}

/// Why an edge with a valid certificate is refused: its name is not on the allow-list.
struct NotAllowed(String);

impl fmt::Debug for NotAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "edge `{}` is not in the queue server's allowed edges", self.0)
    }
}

impl std::error::Error for NotAllowed {}

/// The CA and CRL checks of rustls' WebPKI verifier, then the allow-list.
#[derive(Debug)]
struct EdgeVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    allowed: Option<Vec<String>>,
}

impl ClientCertVerifier for EdgeVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.webpki.verify_client_cert(end_entity, intermediates, now)?;
        if let Some(allowed) = &self.allowed {
            let name = crate::certs::edge_name(end_entity).unwrap_or_default();
            if !allowed.contains(&name) {
                let other = OtherError(Arc::new(NotAllowed(name)));
                return Err(rustls::Error::InvalidCertificate(CertificateError::Other(other)));
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

type Build<C> = Box<dyn Fn() -> Result<C, TlsError> + Send + Sync>;

/// A config and the files it was built from; rebuilt when one of them changes.
struct Reloading<C> {
    paths: Vec<PathBuf>,
    build: Build<C>,
    state: Mutex<State<C>>,
}

struct State<C> {
    config: Arc<C>,
    stamps: Vec<Option<(SystemTime, u64)>>,
    checked: Instant,
}

/// A file's modification time and length, or `None` when it cannot be read.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl<C> Reloading<C> {
    fn new(paths: Vec<PathBuf>, build: Build<C>) -> Result<Self, TlsError> {
        let stamps = paths.iter().map(|p| stamp(p)).collect();
        let config = Arc::new(build()?);
        Ok(Self { paths, build, state: Mutex::new(State { config, stamps, checked: Instant::now() }) })
    }

    fn current(&self) -> Arc<C> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() >= RECHECK {
            state.checked = Instant::now();
            let stamps: Vec<_> = self.paths.iter().map(|p| stamp(p)).collect();
            if stamps != state.stamps {
                // Remember the new stamps even on failure, so a broken file is logged once per
                // change rather than on every handshake.
                state.stamps = stamps;
                match (self.build)() {
                    Ok(config) => {
                        state.config = Arc::new(config);
                        tracing::info!(files = ?self.paths, "TLS certificates reloaded");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS files changed but cannot be used; keeping the previous ones")
                    }
                }
            }
        }
        state.config.clone()
    }
}

#[cfg(test)]
mod tests;
