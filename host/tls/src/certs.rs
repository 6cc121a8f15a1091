//! Certificates for the mutual-TLS queue transport: a development CA, the control server's
//! certificate, one client certificate per edge and the CA's revocation list (CRL).
//!
//! Used by `edgepurge certs init|issue|revoke` and by `edgepurge dev`. The files of a directory:
//!
//! | file | what |
//! |---|---|
//! | `ca.pem`, `ca.key` | the CA certificate and its key (the key never leaves this machine) |
//! | `control.pem`, `control.key` | the control server (SANs `localhost`, `127.0.0.1`, `::1`, extras) |
//! | `edges/<name>.pem`, `edges/<name>.key` | an edge: its name in the CN and a DNS SAN, client-auth EKU |
//! | `crl.pem` | the CA's revocation list, empty until an edge is revoked |
//!
//! Every file is written to a temporary name and renamed, so a role reloading its certificates
//! never reads half a file; keys are created with mode 0600.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;

/// How many edge certificates `init` makes when not told.
pub const DEFAULT_EDGES: usize = 2;
/// The SANs of the control certificate before any extras: what `edgepurge dev` connects to.
pub const CONTROL_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// Validity of the development CA.
const CA_DAYS: i64 = 3650;
/// How long `init` and `issue_edge` make the control and edge certificates valid, in days (the
/// longest browsers accept; peers don't care).
pub const DEFAULT_LEAF_DAYS: i64 = 825;
/// Validity starts this far in the past, so a peer whose clock is a little behind accepts it.
const BACKDATE: Duration = Duration::hours(1);

/// A certificate problem: what went wrong, with which file, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// `init` found a CA and was not told to replace it.
    #[error(
        "{} already holds a CA; pass --force to replace it (which also replaces the control certificate and \
         every edge certificate it issued)",
        dir.display()
    )]
    CaExists {
        /// The certificate directory.
        dir: PathBuf,
    },
    /// The CA files are missing or unreadable.
    #[error("cannot read the CA {what} {}: {error}; create one with `edgepurge certs init DIR` or point --dir at it", path.display())]
    NoCa {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why (shown in the message, not chained, so it is said once).
        error: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (shown in the message, not chained, so it is said once).
        error: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {}: {error}; check the directory exists and is writable", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why (shown in the message, not chained, so it is said once).
        error: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("{} is not a valid {what}: {message}", path.display())]
    Invalid {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The CA key does not belong to the CA certificate.
    #[error("the key {} does not belong to the CA certificate {}; restore the matching pair", key.display(), cert.display())]
    CaKeyMismatch {
        /// The CA certificate.
        cert: PathBuf,
        /// The CA key.
        key: PathBuf,
    },
    /// An edge name that cannot be a certificate identity.
    #[error("invalid edge name `{name}`: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// `issue` for an edge that already has a certificate.
    #[error("edge `{name}` already has a certificate ({}); revoke it and pick another name, or delete its files", path.display())]
    EdgeExists {
        /// The edge.
        name: String,
        /// Its certificate.
        path: PathBuf,
    },
    /// `revoke` for an edge without a certificate.
    #[error("edge `{name}` has no certificate ({} does not exist)", path.display())]
    UnknownEdge {
        /// The edge.
        name: String,
        /// Where its certificate would be.
        path: PathBuf,
    },
    /// `revoke` for an edge whose certificate is already in the CRL.
    #[error("edge `{name}` is already revoked (serial {serial} is in the CRL)")]
    AlreadyRevoked {
        /// The edge.
        name: String,
        /// The serial, hex.
        serial: String,
    },
    /// An extra SAN that is neither an IP address nor a DNS name.
    #[error("invalid SAN `{san}`: give a DNS name (ASCII) or an IP address")]
    InvalidSan {
        /// The SAN given.
        san: String,
    },
    /// rcgen refused to make something (a bug or an unsupported CA key type).
    #[error("cannot make the {what}: {error}")]
    Generate {
        /// What was being made.
        what: &'static str,
        /// rcgen's error.
        error: rcgen::Error,
    },
}

/// Where the files of a certificate directory live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The directory.
    pub dir: PathBuf,
    /// `ca.pem`.
    pub ca_cert: PathBuf,
    /// `ca.key`.
    pub ca_key: PathBuf,
    /// `control.pem`.
    pub control_cert: PathBuf,
    /// `control.key`.
    pub control_key: PathBuf,
    /// `crl.pem`.
    pub crl: PathBuf,
    /// `edges/`.
    pub edges_dir: PathBuf,
}

impl Layout {
    /// The paths under `dir` (nothing is read or created).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            control_cert: dir.join("control.pem"),
            control_key: dir.join("control.key"),
            crl: dir.join("crl.pem"),
            edges_dir: dir.join("edges"),
        }
    }

    /// The files of edge `name`.
    pub fn edge(&self, name: &str) -> EdgeFiles {
        EdgeFiles {
            name: name.to_owned(),
            cert: self.edges_dir.join(format!("{name}.pem")),
            key: self.edges_dir.join(format!("{name}.key")),
        }
    }
}

/// An edge's certificate and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeFiles {
    /// The edge's name (its identity: the certificate's CN and DNS SAN).
    pub name: String,
    /// Its certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

/// What `init` made.
#[derive(Debug, Clone)]
pub struct Initialized {
    /// The directory's paths.
    pub layout: Layout,
    /// The edges issued, `edge-1` … `edge-N`.
    pub edges: Vec<EdgeFiles>,
    /// Every file written, in order.
    pub written: Vec<PathBuf>,
    /// Edge files of a replaced CA that were deleted (they would no longer verify).
    pub removed: Vec<PathBuf>,
}

/// Creates a development CA in `dir`, a control certificate (with `extra_sans` besides
/// [`CONTROL_SANS`]), `edges` edge certificates `edge-1` … and an empty CRL. Refuses when `dir`
/// already holds a CA unless `force`, which also deletes the old CA's edge files.
pub fn init(dir: &Path, edges: usize, extra_sans: &[String], force: bool) -> Result<Initialized, CertError> {
    let layout = Layout::new(dir);
    if !force && (layout.ca_cert.exists() || layout.ca_key.exists()) {
        return Err(CertError::CaExists { dir: dir.to_owned() });
    }
    // Parse the SANs before writing anything, so a typo leaves the directory as it was.
    let mut sans = Vec::new();
    for san in CONTROL_SANS.iter().copied().chain(extra_sans.iter().map(String::as_str)) {
        sans.push(san_type(san)?);
    }
    create_dir(&layout.dir)?;
    create_dir(&layout.edges_dir)?;
    let removed = if force { remove_edge_files(&layout.edges_dir)? } else { Vec::new() };
    let mut written = Vec::new();

    let ca = new_ca()?;
    write_file(&layout.ca_key, ca.key().serialize_pem().as_bytes(), true, &mut written)?;
    write_file(&layout.ca_cert, ca.pem().as_bytes(), false, &mut written)?;

    let (cert, key) =
        leaf(&ca, "edgepurge control", sans, ExtendedKeyUsagePurpose::ServerAuth, Validity::days(DEFAULT_LEAF_DAYS))?;
    write_file(&layout.control_key, key.as_bytes(), true, &mut written)?;
    write_file(&layout.control_cert, cert.as_bytes(), false, &mut written)?;

    let mut issued = Vec::new();
    for i in 1..=edges {
        let files = layout.edge(&format!("edge-{i}"));
        write_edge(&ca, &files, Validity::days(DEFAULT_LEAF_DAYS), &mut written)?;
        issued.push(files);
    }
    let crl = crl::crl_params(Vec::new(), SerialNumber::from(1u64), crl::ca_key_id(ca.der()));
    crl::write_crl(&layout, &crl, &ca, &mut written)?;
    Ok(Initialized { layout, edges: issued, written, removed })
}

/// Issues a certificate for edge `name`, signed by the CA in `dir` (which may be your own CA:
/// only `ca.pem` and `ca.key` are read), valid for 825 days. Refuses an invalid name or one that
/// already has files.
pub fn issue_edge(dir: &Path, name: &str) -> Result<EdgeFiles, CertError> {
    issue_edge_valid(dir, name, Validity::days(DEFAULT_LEAF_DAYS))
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Not valid before this instant.
    pub not_before: OffsetDateTime,
    /// Not valid after this instant.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From a little before now (clock skew between machines) to `days` ahead. A negative
    /// `days` gives a certificate that expired that many days ago (valid for the day before).
    pub fn days(days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        let not_after = now + Duration::days(days);
        Validity { not_before: (now - BACKDATE).min(not_after - Duration::days(1)), not_after }
    }
}

/// [`issue_edge`] with an explicit validity (short-lived certificates; an already expired one
/// for tests of refusal).
pub fn issue_edge_valid(dir: &Path, name: &str, validity: Validity) -> Result<EdgeFiles, CertError> {
    validate_edge_name(name)?;
    let layout = Layout::new(dir);
    let files = layout.edge(name);
    for path in [&files.cert, &files.key] {
        if path.exists() {
            return Err(CertError::EdgeExists { name: name.to_owned(), path: path.clone() });
        }
    }
    let (issuer, _) = load_ca(&layout)?;
    create_dir(&layout.edges_dir)?;
    write_edge(&issuer, &files, validity, &mut Vec::new())?;
    Ok(files)
}

/// The edge identity in a client certificate: its first DNS SAN, else its CN. What the control
/// role calls to know which edge connected.
pub fn edge_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert).ok()?;
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                return Some((*dns).to_owned());
            }
        }
    }
    let cn = x509.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned);
    cn
}

/// Accepts a DNS label (lowercase ASCII letters, digits, `-`; at most 63; no `-` at either end),
/// because the name becomes a DNS SAN and a file name.
pub fn validate_edge_name(name: &str) -> Result<(), CertError> {
    let refuse = |reason| Err(CertError::InvalidName { name: name.to_owned(), reason });
    if name.is_empty() || name.len() > 63 {
        return refuse("use 1 to 63 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return refuse("use lowercase ASCII letters, digits and `-` only");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return refuse("it may not start or end with `-`");
    }
    Ok(())
}

fn invalid(what: &'static str, path: &Path, e: impl std::fmt::Display) -> CertError {
    CertError::Invalid { what, path: path.to_owned(), message: e.to_string() }
}

fn generate(what: &'static str) -> impl FnOnce(rcgen::Error) -> CertError {
    move |error| CertError::Generate { what, error }
}

fn san_type(san: &str) -> Result<SanType, CertError> {
    if let Ok(ip) = san.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let bad = || CertError::InvalidSan { san: san.to_owned() };
    if san.is_empty() || san.contains(['/', ':', ' ']) {
        return Err(bad());
    }
    Ok(SanType::DnsName(san.try_into().map_err(|_| bad())?))
}

/// Sets the params' validity.
fn validity(params: &mut CertificateParams, validity: Validity) {
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
}

fn new_ca() -> Result<CertifiedIssuer<'static, KeyPair>, CertError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "edgepurge development CA");
    params.distinguished_name.push(DnType::OrganizationName, "edgepurge");
    // Path length 0: this CA signs leaves only, never an intermediate.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, Validity::days(CA_DAYS));
    let key = KeyPair::generate().map_err(generate("CA key"))?;
    CertifiedIssuer::self_signed(params, key).map_err(generate("CA certificate"))
}

/// A leaf certificate and its key (PEM) with CN `cn`, the given SANs and one extended key usage.
fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    sans: Vec<SanType>,
    eku: ExtendedKeyUsagePurpose,
    valid: Validity,
) -> Result<(String, String), CertError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, valid);
    let key = KeyPair::generate().map_err(generate("certificate key"))?;
    let cert = params.signed_by(&key, issuer).map_err(generate("certificate"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_edge(
    issuer: &Issuer<'_, KeyPair>,
    files: &EdgeFiles,
    valid: Validity,
    written: &mut Vec<PathBuf>,
) -> Result<(), CertError> {
    let san = san_type(&files.name)?;
    let (cert, key) = leaf(issuer, &files.name, vec![san], ExtendedKeyUsagePurpose::ClientAuth, valid)?;
    write_file(&files.key, key.as_bytes(), true, written)?;
    write_file(&files.cert, cert.as_bytes(), false, written)
}

fn read_cert(path: &Path, what: &'static str) -> Result<CertificateDer<'static>, CertError> {
    let bytes = std::fs::read(path).map_err(|error| CertError::Read { path: path.to_owned(), error })?;
    CertificateDer::from_pem_slice(&bytes).map_err(|e| invalid(what, path, e))
}

/// The CA of `layout` as an issuer, and its certificate; checks that the key belongs to it.
fn load_ca(layout: &Layout) -> Result<(Issuer<'static, KeyPair>, CertificateDer<'static>), CertError> {
    let no_ca = |what, path: &Path, error| CertError::NoCa { what, path: path.to_owned(), error };
    std::fs::metadata(&layout.ca_cert).map_err(|e| no_ca("certificate", &layout.ca_cert, e))?;
    let key_pem = std::fs::read_to_string(&layout.ca_key).map_err(|e| no_ca("key", &layout.ca_key, e))?;
    let cert = read_cert(&layout.ca_cert, "CA certificate")?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| invalid("CA key", &layout.ca_key, e))?;
    let (_, x509) =
        x509_parser::parse_x509_certificate(&cert).map_err(|e| invalid("CA certificate", &layout.ca_cert, e))?;
    if x509.tbs_certificate.subject_pki.raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
        return Err(CertError::CaKeyMismatch { cert: layout.ca_cert.clone(), key: layout.ca_key.clone() });
    }
    let issuer = Issuer::from_ca_cert_der(&cert, key).map_err(|e| invalid("CA certificate", &layout.ca_cert, e))?;
    Ok((issuer, cert))
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    std::fs::create_dir_all(dir).map_err(|error| CertError::Write { path: dir.to_owned(), error })
}

/// Deletes `*.pem` and `*.key` in `edges/`: certificates of a CA being replaced.
fn remove_edge_files(edges_dir: &Path) -> Result<Vec<PathBuf>, CertError> {
    let entries =
        std::fs::read_dir(edges_dir).map_err(|error| CertError::Read { path: edges_dir.to_owned(), error })?;
    let mut removed = Vec::new();
    for entry in entries {
        let path = entry.map_err(|error| CertError::Read { path: edges_dir.to_owned(), error })?.path();
        if matches!(path.extension().and_then(|e| e.to_str()), Some("pem" | "key")) {
            std::fs::remove_file(&path).map_err(|error| CertError::Write { path: path.clone(), error })?;
            removed.push(path);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Writes `contents` to a temporary file (mode 0600 when `secret`) and renames it over `path`:
/// readers see the old file or the new one, never a mix, and a key is never world-readable.
fn write_file(path: &Path, contents: &[u8], secret: bool, written: &mut Vec<PathBuf>) -> Result<(), CertError> {
    use std::io::Write;
    let err = |error| CertError::Write { path: path.to_owned(), error };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if secret { 0o600 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    written.push(path.to_owned());
    Ok(())
}

mod crl;
#[cfg(test)]
pub(crate) mod tests;

pub use crl::{revoke_edge, Revoked};
