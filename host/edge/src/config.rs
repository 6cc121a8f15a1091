//! `edge.toml`: listeners, origins by host, cache, collapsing and policy settings.
//! `edge.example.toml` at the crate root documents every key.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole edge configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EdgeConfig {
    /// Proxy listener (clients).
    pub listen: SocketAddr,
    /// Admin listener (purges, metrics); keep it on loopback or a private network.
    #[serde(default = "default_admin")]
    pub admin_listen: SocketAddr,
    /// Networks (CIDR, e.g. `127.0.0.0/8`) allowed to send the `PURGE` method on the proxy
    /// listener; from anywhere else `PURGE` is answered `405`.
    #[serde(default = "default_admin_networks")]
    pub admin_networks: Vec<ipnet::IpNet>,
    /// Origins, one per host.
    #[serde(default, rename = "origin")]
    pub origins: Vec<OriginConfig>,
    /// Cache settings.
    #[serde(default)]
    pub cache: CacheSection,
    /// Request collapsing settings.
    #[serde(default)]
    pub collapse: CollapseSection,
    /// The policy component and its configuration.
    #[serde(default)]
    pub policy: PolicySection,
    /// The TLS proxy listener; none means cleartext only.
    #[serde(default)]
    pub tls: Option<TlsSection>,
}

/// Where requests for one host go.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OriginConfig {
    /// The `Host` this origin serves (lower-case, no port); `*` matches any host.
    pub host: String,
    /// Base URL of the origin, `http://…` or `https://…`, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Connect timeout in milliseconds.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Timeout for the response head in milliseconds.
    #[serde(default = "default_read_ms")]
    pub read_timeout_ms: u64,
    /// A PEM file of CA certificates trusted for this `https://` origin, in addition to the
    /// public roots (for an origin with a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl OriginConfig {
    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms)
    }
}

/// `[cache]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct CacheSection {
    /// Store capacity in MiB.
    pub capacity_mib: u64,
    /// Largest object stored, in MiB; larger responses stream through uncached.
    pub max_object_mib: u64,
    /// Follow the origin's freshness headers (S3.4); when false, `default-ttl-secs` applies.
    pub honor_origin: bool,
    /// TTL when the origin states none (or always, when `honor-origin = false`).
    pub default_ttl_secs: Option<u64>,
    /// `ignore`, `unique` or `bypass` (S3.5).
    pub query_mode: edgepurge_url::QueryMode,
    /// Honor the client's request `Cache-Control` (S3.1: off by default).
    pub honor_client_cache_control: bool,
}

impl Default for CacheSection {
    fn default() -> Self {
        CacheSection {
            capacity_mib: 256,
            max_object_mib: 16,
            honor_origin: true,
            default_ttl_secs: None,
            query_mode: edgepurge_url::QueryMode::Unique,
            honor_client_cache_control: false,
        }
    }
}

/// `[collapse]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct CollapseSection {
    /// Waiters on one fill after which requests are answered at once (S4.1).
    pub max_waiters: usize,
    /// How long a waiter waits for the response head, in milliseconds.
    pub wait_timeout_ms: u64,
}

impl Default for CollapseSection {
    fn default() -> Self {
        CollapseSection { max_waiters: 10, wait_timeout_ms: 10_000 }
    }
}

/// `[policy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PolicySection {
    /// Path of the policy component; none means the built-in defaults.
    pub path: Option<PathBuf>,
    /// The policy's configuration.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// `[tls]`: the TLS proxy listener (HTTP/1.1 and HTTP/2 by ALPN), serving the same proxy as
/// `listen`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TlsSection {
    /// Address of the TLS listener.
    pub listen: SocketAddr,
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the certificate's private key.
    pub key: PathBuf,
}

fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9080))
}

fn default_admin_networks() -> Vec<ipnet::IpNet> {
    ["127.0.0.0/8", "::1/128"].iter().map(|n| n.parse().expect("valid CIDR")).collect()
}

fn default_connect_ms() -> u64 {
    2_000
}

fn default_read_ms() -> u64 {
    15_000
}

/// Checks that a file named by `key` exists; its content is checked when the edge starts.
fn file_exists(key: &str, path: &Path) -> Result<(), ConfigError> {
    if path.is_file() {
        return Ok(());
    }
    let problem = if path.exists() { "is not a file" } else { "does not exist" };
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "?".into());
    Err(ConfigError::Invalid(format!(
        "{key}: `{}` {problem} (relative paths are relative to the working directory, {cwd})",
        path.display()
    )))
}

/// A configuration problem, naming the file and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is invalid or has unknown keys.
    #[error("{path}: {message} (see edge.example.toml for every key)")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("{0}")]
    Invalid(String),
}

impl EdgeConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<EdgeConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        EdgeConfig::parse(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `path` is used in messages.
    pub fn parse(text: &str, path: &str) -> Result<EdgeConfig, ConfigError> {
        let config: EdgeConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for origin in &self.origins {
            if !(origin.url.starts_with("http://") || origin.url.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "origin for host `{}`: url `{}` must start with http:// or https://",
                    origin.host, origin.url
                )));
            }
            if let Some(ca_file) = &origin.ca_file {
                file_exists(&format!("origin for host `{}`: ca-file", origin.host), ca_file)?;
            }
        }
        if let Some(tls) = &self.tls {
            file_exists("tls.cert", &tls.cert)?;
            file_exists("tls.key", &tls.key)?;
        }
        if self.cache.max_object_mib > self.cache.capacity_mib {
            return Err(ConfigError::Invalid(format!(
                "cache.max-object-mib ({}) is larger than cache.capacity-mib ({})",
                self.cache.max_object_mib, self.cache.capacity_mib
            )));
        }
        if self.collapse.max_waiters == 0 {
            return Err(ConfigError::Invalid("collapse.max-waiters must be at least 1".into()));
        }
        Ok(())
    }

    /// Whether `ip` is in `admin-networks` (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn is_admin_peer(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.admin_networks.iter().any(|net| net.contains(&ip))
    }

    /// The origin for a request host: an exact match, else `*`.
    pub fn origin_for(&self, host: &str) -> Option<&OriginConfig> {
        self.origins
            .iter()
            .find(|o| o.host.eq_ignore_ascii_case(host))
            .or_else(|| self.origins.iter().find(|o| o.host == "*"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../edge.example.toml");
        let config = EdgeConfig::parse(text, "edge.example.toml").unwrap();
        assert_eq!(config.collapse.max_waiters, 10);
        assert!(config.origin_for("www.example.com").is_some());
    }

    #[test]
    fn admin_networks_match_v4_v6_and_mapped_addresses() {
        let config =
            EdgeConfig::parse("listen = \"127.0.0.1:1\"\nadmin-networks = [\"10.1.0.0/16\", \"fd00::/8\"]\n", "e.toml")
                .unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(config.is_admin_peer(ip("10.1.2.3")));
        assert!(config.is_admin_peer(ip("::ffff:10.1.2.3")));
        assert!(config.is_admin_peer(ip("fd12::1")));
        assert!(!config.is_admin_peer(ip("10.2.0.1")));
        assert!(!config.is_admin_peer(ip("127.0.0.1")));
    }

    #[test]
    fn mistakes_are_named() {
        let err = EdgeConfig::parse("listen = \"127.0.0.1:1\"\nlisten-typo = 1\n", "e.toml").unwrap_err().to_string();
        assert!(err.contains("listen-typo") && err.contains("edge.example.toml"), "{err}");
        let err = EdgeConfig::parse("listen = \"127.0.0.1:1\"\n[cache]\nquery-mode = \"sometimes\"\n", "e.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("query-mode"), "{err}");
        let err = EdgeConfig::parse("listen = \"127.0.0.1:1\"\nadmin-networks = [\"10.0.0.0/33\"]\n", "e.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("admin-networks") || err.contains("10.0.0.0/33"), "{err}");
        let text = "listen = \"127.0.0.1:1\"\n[[origin]]\nhost = \"a.com\"\nurl = \"ftp://x\"\n";
        assert!(EdgeConfig::parse(text, "e.toml").unwrap_err().to_string().contains("http://"));
    }

    #[test]
    fn tls_and_ca_files_are_checked_and_named() {
        let dir = tempfile::TempDir::new().unwrap();
        let pem = dir.path().join("present.pem");
        std::fs::write(&pem, "x").unwrap();
        let (pem, missing) = (pem.display(), dir.path().join("missing.pem"));
        let missing = missing.display();
        let base = "listen = \"127.0.0.1:1\"\n";

        let ok = format!("{base}[tls]\nlisten = \"127.0.0.1:2\"\ncert = \"{pem}\"\nkey = \"{pem}\"\n");
        let config = EdgeConfig::parse(&ok, "e.toml").unwrap();
        assert_eq!(config.tls.unwrap().listen.port(), 2);
        assert!(EdgeConfig::parse(base, "e.toml").unwrap().tls.is_none());

        let text = format!("{base}[tls]\nlisten = \"127.0.0.1:2\"\ncert = \"{missing}\"\nkey = \"{pem}\"\n");
        let err = EdgeConfig::parse(&text, "e.toml").unwrap_err().to_string();
        assert!(err.contains("tls.cert") && err.contains("missing.pem") && err.contains("does not exist"), "{err}");
        let text =
            format!("{base}[tls]\nlisten = \"127.0.0.1:2\"\ncert = \"{pem}\"\nkey = \"{}\"\n", dir.path().display());
        let err = EdgeConfig::parse(&text, "e.toml").unwrap_err().to_string();
        assert!(err.contains("tls.key") && err.contains("is not a file"), "{err}");

        let origin =
            |ca: &str| format!("{base}[[origin]]\nhost = \"a.com\"\nurl = \"https://x\"\nca-file = \"{ca}\"\n");
        let config = EdgeConfig::parse(&origin(&pem.to_string()), "e.toml").unwrap();
        assert_eq!(config.origins[0].ca_file.as_deref(), Some(std::path::Path::new(&pem.to_string())));
        let err = EdgeConfig::parse(&origin(&missing.to_string()), "e.toml").unwrap_err().to_string();
        assert!(err.contains("`a.com`: ca-file") && err.contains("missing.pem"), "{err}");
    }
}
