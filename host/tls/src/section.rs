//! `[tls]`: the certificate files of a TLS listener, as both roles configure them (control's API,
//! the edge's TLS proxy listener, which adds its `listen` address).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The certificate chain and key a TLS listener presents (loaded by [`crate::server_config`] or
/// [`crate::mtls::ReloadingServerConfig::without_client_auth`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TlsSection {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1; not encrypted).
    pub key: PathBuf,
}

impl TlsSection {
    /// Makes the certificate and key paths, when relative, relative to `dir` (the directory of
    /// the config file they were read from), as both roles resolve their files.
    pub fn resolve_against(&mut self, dir: &Path) {
        resolve_against(&mut self.cert, dir);
        resolve_against(&mut self.key, dir);
    }
}

/// `path` made relative to `dir` when it is relative: how both roles' config files name files
/// next to themselves.
pub fn resolve_against(path: &mut PathBuf, dir: &Path) {
    if path.is_relative() {
        *path = dir.join(&*path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_and_key_are_required_and_unknown_keys_refused() {
        let tls: TlsSection = toml::from_str("cert = \"c.pem\"\nkey = \"k.pem\"\n").unwrap();
        assert_eq!(tls, TlsSection { cert: "c.pem".into(), key: "k.pem".into() });
        assert!(toml::from_str::<TlsSection>("cert = \"c.pem\"\n").unwrap_err().to_string().contains("key"));
        let err = toml::from_str::<TlsSection>("cert = \"c\"\nkey = \"k\"\nkee = 1\n").unwrap_err().to_string();
        assert!(err.contains("kee"), "{err}");
    }

    #[test]
    fn relative_files_resolve_against_the_config_directory() {
        let mut tls = TlsSection { cert: "c.pem".into(), key: "/abs/k.pem".into() };
        tls.resolve_against(Path::new("/etc/edgepurge"));
        assert_eq!(tls, TlsSection { cert: "/etc/edgepurge/c.pem".into(), key: "/abs/k.pem".into() });
    }
}
