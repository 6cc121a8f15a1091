//! # edgepurge-tls — the one place edgepurge configures rustls
//!
//! Every TLS endpoint of the product (the edge's listener and its https origins today; the control
//! role and the mutual-TLS queue transport later) gets its rustls configuration here, so there is
//! one crypto provider, one set of protocol versions and one way of reading PEM files:
//!
//! - [`provider`] — the crypto provider: *ring*, and only ring (aws-lc is never built). Configs are
//!   made with `builder_with_provider`, so no process-wide default provider is installed.
//! - [`load_certs`], [`load_key`] — PEM files, with errors that name the file and what is wrong.
//! - [`server_config`] — certificate chain + key, ALPN `h2` then `http/1.1`.
//! - [`TlsSection`] — `[tls]` in both roles' configuration: the certificate chain and key files.
//! - [`client_config`] — the Mozilla roots shipped by `webpki-roots` plus optional extra CA files,
//!   ALPN `h2` then `http/1.1`.
//!
//! ```no_run
//! # fn f() -> Result<(), edgepurge_tls::TlsError> {
//! use std::path::Path;
//! let server = edgepurge_tls::server_config(Path::new("cert.pem"), Path::new("key.pem"))?;
//! let client = edgepurge_tls::client_config(&[Path::new("private-ca.pem")])?;
//! # let _ = (server, client); Ok(()) }
//! ```
//!
//! ## Certificates
//!
//! [`certs`] makes what the mutual-TLS queue transport needs: `edgepurge certs init DIR` writes a
//! **development CA** (`ca.pem`, `ca.key`), the control server's certificate, one client
//! certificate per edge (its name in the CN and a DNS SAN, which is how the control role knows
//! which edge connected) and an empty CRL; `certs issue` adds an edge, `certs revoke` lists one
//! in the CRL. The dev CA's key sits next to the certificates, which is fine on a laptop only.
//!
//! **In production, bring your own CA**: give each role the CA certificate, its own certificate
//! and key, and the CA's CRL, issued by your PKI (the edge certificates need the client-auth EKU
//! and the edge's name as a DNS SAN). `certs issue`/`revoke` work with any CA whose `ca.pem` and
//! `ca.key` (PKCS#8, ECDSA, Ed25519 or RSA) you put in the directory, but an offline or managed CA
//! is the better home for that key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub mod certs;
pub mod mtls;
mod section;

pub use section::{resolve_against, TlsSection};

/// The rustls version this crate configures, re-exported so every user names the same types.
pub use rustls;

/// ALPN protocol id of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol id of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The HTTP version a server connection negotiated by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiated {
    /// `h2`.
    Http2,
    /// `http/1.1` (or another protocol id: served as HTTP/1.1).
    Http1,
    /// No ALPN: the server detects the version from the client's first bytes.
    Unknown,
}

/// Why a server handshake did not complete (the connection is dropped; the server goes on).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The client sent something that is not a valid TLS handshake, or closed the connection.
    #[error("TLS handshake failed: {0}")]
    Failed(std::io::Error),
    /// The client did not finish its handshake in time.
    #[error("TLS handshake did not finish within {0:?}")]
    TimedOut(std::time::Duration),
}

/// Completes a server handshake on `stream` within `timeout` and says which HTTP version ALPN
/// chose. Both roles run it in the connection's own task, so a slow or silent client never
/// holds up accepting others.
pub async fn accept<IO>(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: IO,
    timeout: std::time::Duration,
) -> Result<(tokio_rustls::server::TlsStream<IO>, Negotiated), HandshakeError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(HandshakeError::Failed(e)),
        Err(_) => return Err(HandshakeError::TimedOut(timeout)),
    };
    let negotiated = match stream.get_ref().1.alpn_protocol() {
        Some(ALPN_H2) => Negotiated::Http2,
        Some(_) => Negotiated::Http1,
        None => Negotiated::Unknown,
    };
    Ok((stream, negotiated))
}

/// The ALPN list offered and accepted: HTTP/2 preferred, HTTP/1.1 as fallback.
fn alpn() -> Vec<Vec<u8>> {
    vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()]
}

/// The product's crypto provider (*ring*). Passed explicitly to every config builder instead of
/// installed process-wide, so a library in the same process cannot pick another one for us.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS file or configuration problem, naming the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {what} file {}: {source}", path.display())]
    Read {
        /// What the file should hold ("certificate", "private key", "CA certificate").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid PEM.
    #[error("{what} file {} is not valid PEM: {message}", path.display())]
    Pem {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The file holds no certificate.
    #[error("{} holds no certificate (expected a `-----BEGIN CERTIFICATE-----` block){hint}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// A hint about what the file holds instead, or empty.
        hint: &'static str,
    },
    /// The file holds no private key.
    #[error(
        "{} holds no private key (expected a PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY` \
         block){hint}",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
        /// A hint about what the file holds instead, or empty.
        hint: &'static str,
    },
    /// The private key does not belong to the certificate.
    #[error(
        "the private key in {} does not match the certificate in {} (the first certificate of the chain must be the \
         one issued for this key)",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the certificate and key (unsupported key type, for example).
    #[error("cannot use certificate {} with key {}: {message}", cert.display(), key.display())]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' message.
        message: String,
    },
    /// The crypto provider cannot build a config (a build problem, not a configuration one).
    #[error("the TLS crypto provider cannot make a config: {0} (this is a bug in the build; please report it)")]
    Provider(String),
    /// The certificate revocation list cannot be used.
    #[error("CRL file {}: {message} (expected a PEM `X509 CRL` block signed by the CA)", path.display())]
    Crl {
        /// The CRL file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A CA certificate could not be added to the trust store.
    #[error("CA file {}: certificate not usable as a trust anchor: {message}", path.display())]
    BadCa {
        /// The CA file.
        path: PathBuf,
        /// rustls' message.
        message: String,
    },
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_owned(), source })
}

fn pem_error(what: &'static str, path: &Path, e: pem::Error) -> TlsError {
    TlsError::Pem { what, path: path.to_owned(), message: e.to_string() }
}

/// Loads every certificate of a PEM file, in order (a chain: leaf first, then intermediates).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certs_from("certificate", path)
}

fn certs_from(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(what, path)?;
    let certs =
        CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>().map_err(|e| pem_error(what, path, e))?;
    if certs.is_empty() {
        // Swapped `cert` and `key` settings are the usual cause; say so.
        let hint = if PrivateKeyDer::from_pem_slice(&bytes).is_ok() { "; it holds a private key instead" } else { "" };
        return Err(TlsError::NoCertificate { path: path.to_owned(), hint });
    }
    Ok(certs)
}

/// Loads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read("private key", path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let hint = if contains(&bytes, b"ENCRYPTED PRIVATE KEY") {
                "; it holds an encrypted key, which is not supported: decrypt it with `openssl pkey -in FILE -out FILE`"
            } else if CertificateDer::from_pem_slice(&bytes).is_ok() {
                "; it holds a certificate instead"
            } else {
                ""
            };
            Err(TlsError::NoKey { path: path.to_owned(), hint })
        }
        Err(e) => Err(pem_error("private key", path, e)),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A server config presenting the chain in `cert` with the key in `key`; ALPN `h2`, `http/1.1`.
/// No client authentication.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let chain = load_certs(cert)?;
    let private_key = load_key(key)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Provider(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| cert_rejected(cert, key, e))?;
    config.alpn_protocols = alpn();
    Ok(config)
}

/// rustls' refusal of a certificate and key, naming both files.
fn cert_rejected(cert: &Path, key: &Path, e: rustls::Error) -> TlsError {
    match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::KeyMismatch { cert: cert.to_owned(), key: key.to_owned() }
        }
        other => TlsError::Rejected { cert: cert.to_owned(), key: key.to_owned(), message: other.to_string() },
    }
}

/// A trust store holding every certificate of each PEM file in `cas`, after `base`.
fn roots_with<P: AsRef<Path>>(mut roots: RootCertStore, cas: &[P]) -> Result<RootCertStore, TlsError> {
    for path in cas {
        let path = path.as_ref();
        for cert in certs_from("CA certificate", path)? {
            roots.add(cert).map_err(|e| TlsError::BadCa { path: path.to_owned(), message: e.to_string() })?;
        }
    }
    Ok(roots)
}

/// A client config trusting the Mozilla roots (`webpki-roots`) and every certificate in each of
/// `extra_cas` (PEM files, e.g. a private CA); ALPN `h2`, `http/1.1`. No client certificate.
pub fn client_config<P: AsRef<Path>>(extra_cas: &[P]) -> Result<ClientConfig, TlsError> {
    let roots = roots_with(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }, extra_cas)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Provider(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn();
    Ok(config)
}

#[cfg(test)]
mod tests;
