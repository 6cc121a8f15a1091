//! Revocation: the CA's CRL (`crl.pem`), written empty by `init` and re-signed by `revoke_edge`
//! with every earlier entry kept, a new CRL number and a fresh `nextUpdate`.

use std::path::{Path, PathBuf};

use rcgen::{CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;

use super::{generate, invalid, load_ca, read_cert, validate_edge_name, write_file, CertError, Layout, BACKDATE};

/// A CRL's `nextUpdate`: how long a verifier may rely on it before it must be re-signed.
const CRL_DAYS: i64 = 30;

/// What `revoke_edge` did.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// The edge.
    pub name: String,
    /// Its certificate's serial, hex.
    pub serial: String,
    /// The CRL now listing it.
    pub crl: PathBuf,
}

/// Adds edge `name`'s certificate serial to `dir`'s CRL and re-signs it (new CRL number, a fresh
/// `nextUpdate`). Verifiers built with the CRL refuse the edge from then on.
pub fn revoke_edge(dir: &Path, name: &str) -> Result<Revoked, CertError> {
    validate_edge_name(name)?;
    let layout = Layout::new(dir);
    let files = layout.edge(name);
    if !files.cert.exists() {
        return Err(CertError::UnknownEdge { name: name.to_owned(), path: files.cert });
    }
    let (issuer, ca_der) = load_ca(&layout)?;
    let edge_der = read_cert(&files.cert, "certificate")?;
    let (_, edge) =
        x509_parser::parse_x509_certificate(&edge_der).map_err(|e| invalid("certificate", &files.cert, e))?;
    let serial = edge.tbs_certificate.serial.to_bytes_be();
    let hex: String = serial.iter().map(|b| format!("{b:02x}")).collect();

    let crl_bytes = std::fs::read(&layout.crl).map_err(|error| CertError::Read { path: layout.crl.clone(), error })?;
    let crl_der =
        CertificateRevocationListDer::from_pem_slice(&crl_bytes).map_err(|e| invalid("CRL", &layout.crl, e))?;
    let (_, crl) = x509_parser::parse_x509_crl(&crl_der).map_err(|e| invalid("CRL", &layout.crl, e))?;
    let mut revoked = Vec::new();
    for entry in crl.iter_revoked_certificates() {
        let bytes = entry.serial().to_bytes_be();
        if bytes == serial {
            return Err(CertError::AlreadyRevoked { name: name.to_owned(), serial: hex });
        }
        revoked.push(revoked_cert(bytes, OffsetDateTime::from_unix_timestamp(entry.revocation_date.timestamp()).ok()));
    }
    revoked.push(revoked_cert(serial, None));
    let number = crl.crl_number().cloned().unwrap_or_default() + 1u32;
    let params = crl_params(revoked, SerialNumber::from(number.to_bytes_be()), ca_key_id(&ca_der));
    write_crl(&layout, &params, &issuer, &mut Vec::new())?;
    Ok(Revoked { name: name.to_owned(), serial: hex, crl: layout.crl })
}

fn revoked_cert(serial: Vec<u8>, when: Option<OffsetDateTime>) -> RevokedCertParams {
    RevokedCertParams {
        serial_number: SerialNumber::from(serial),
        revocation_time: when.unwrap_or_else(OffsetDateTime::now_utc),
        reason_code: None,
        invalidity_date: None,
    }
}

pub(super) fn crl_params(
    revoked: Vec<RevokedCertParams>,
    number: SerialNumber,
    key_id: KeyIdMethod,
) -> CertificateRevocationListParams {
    let now = OffsetDateTime::now_utc();
    CertificateRevocationListParams {
        this_update: now - BACKDATE,
        next_update: now + Duration::days(CRL_DAYS),
        crl_number: number,
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: key_id,
    }
}

pub(super) fn write_crl(
    layout: &Layout,
    params: &CertificateRevocationListParams,
    issuer: &Issuer<'_, KeyPair>,
    written: &mut Vec<PathBuf>,
) -> Result<(), CertError> {
    let crl = params.signed_by(issuer).map_err(generate("CRL"))?;
    let pem = crl.pem().map_err(generate("CRL"))?;
    write_file(&layout.crl, pem.as_bytes(), false, written)
}

/// The CA's own subject key identifier, so the CRL's authority key identifier matches it even
/// for a CA made elsewhere with another method; SHA-256 (rcgen's default) when it has none.
pub(super) fn ca_key_id(ca: &CertificateDer<'_>) -> KeyIdMethod {
    let ski = x509_parser::parse_x509_certificate(ca).ok().and_then(|(_, x509)| {
        x509.extensions().iter().find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
    });
    ski.map_or(KeyIdMethod::Sha256, KeyIdMethod::PreSpecified)
}
