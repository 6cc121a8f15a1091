//! `edge.toml`: listeners, origins by host, cache, collapsing and policy settings.
//! `edge.example.toml` at the crate root documents every key.
//!
//! Values are parsed into their types when the file is loaded (control node URLs into
//! [`ControlNode`]s, origin URLs into [`OriginUrl`]s), so a bad value fails at start naming its
//! key, never later per request. Relative paths are resolved against the config file's
//! directory, as in `control.toml`.

use edgepurge_policy_runtime::PolicySection;
use edgepurge_tls::TlsSection;
use serde::Deserialize;
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
    pub tls: Option<TlsListenerSection>,
    /// The control nodes to consume purge tasks and policies from; none means standalone (purges
    /// only through the admin listener).
    #[serde(default)]
    pub control: Option<ControlSection>,
}

/// `[control]`: the control nodes' queue servers this edge streams tasks and policies from, over
/// mutual TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ControlSection {
    /// The queue servers, `https://host:port`, all connected at once.
    pub nodes: Vec<ControlNode>,
    /// PEM file of the CA that signed the control certificates.
    pub ca: PathBuf,
    /// PEM file of this edge's client certificate (its identity).
    pub cert: PathBuf,
    /// PEM file of that certificate's private key.
    pub key: PathBuf,
    /// PEM file of the CA's certificate revocation list.
    #[serde(default)]
    pub crl: Option<PathBuf>,
    /// The name to verify in the control certificates (default: the host of each node URL).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Directory of the receive buffer (created if missing).
    pub state_dir: PathBuf,
    /// Receive buffer capacity in bytes (task sizes received but not yet applied).
    #[serde(default = "default_buffer_bytes")]
    pub buffer_bytes: u64,
    /// Idle time after which a heartbeat is sent; 3× without anything received drops the stream.
    /// Control's idle stream carries only its own heartbeats, so this must be at least a third
    /// of control's `[queue-server] heartbeat-ms` (both default to 1000).
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// What the edge does when the receive buffer cannot be opened or read (a damaged file).
    #[serde(default)]
    pub on_buffer_failure: OnBufferFailure,
}

/// `control.on-buffer-failure`: the answer to a receive buffer that cannot be opened or read
/// (truncated, a garbage page, not a database, deleted under a running edge). Either way no
/// purge is lost: the tasks the damaged file held are treated as unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnBufferFailure {
    /// Move the file aside, purge everything the edge holds (hard), start a fresh buffer and
    /// keep serving; control re-sends from the fresh buffer's empty positions.
    #[default]
    PurgeAndContinue,
    /// Answer every proxy request `503` (with `Retry-After`) until the buffer is readable again
    /// (the operator moves the file aside or repairs it); then purge everything and serve.
    StopServing,
}

impl OnBufferFailure {
    /// The value as written in `edge.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnBufferFailure::PurgeAndContinue => "purge-and-continue",
            OnBufferFailure::StopServing => "stop-serving",
        }
    }
}

/// One `[control] nodes` entry, parsed when the config is loaded (a bad entry fails the load,
/// naming `control.nodes` and the value).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ControlNode {
    /// The URL as configured.
    pub url: String,
    /// Host name or IP address (without brackets).
    pub host: String,
    /// Port (443 when the URL names none).
    pub port: u16,
}

impl TryFrom<String> for ControlNode {
    type Error = String;

    fn try_from(url: String) -> Result<ControlNode, String> {
        parse_node(&url).map_err(|reason| format!("control.nodes: `{url}` {reason} (expected https://host:port)"))
    }
}

impl ControlSection {
    /// The configured node URLs, as written.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.url.clone()).collect()
    }

    /// The heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.nodes.is_empty() {
            return Err(ConfigError::Invalid(
                "control.nodes is empty: list at least one queue server, e.g. [\"https://control-1:7443\"], or \
                 remove [control] to run standalone"
                    .into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for node in &self.nodes {
            if !seen.insert((node.host.to_ascii_lowercase(), node.port)) {
                return Err(ConfigError::Invalid(format!("control.nodes: `{}` is listed twice", node.url)));
            }
        }
        file_exists("control.ca", &self.ca)?;
        file_exists("control.cert", &self.cert)?;
        file_exists("control.key", &self.key)?;
        if let Some(crl) = &self.crl {
            file_exists("control.crl", crl)?;
        }
        if let Some(name) = &self.server_name {
            if rustls_pki_name(name).is_err() {
                return Err(ConfigError::Invalid(format!(
                    "control.server-name `{name}` is not a DNS name or IP address"
                )));
            }
        }
        if self.state_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid(
                "control.state-dir is empty: name a directory for the receive buffer".into(),
            ));
        }
        if self.buffer_bytes < MIN_BUFFER_BYTES {
            return Err(ConfigError::Invalid(format!(
                "control.buffer-bytes ({}) is below the minimum of {MIN_BUFFER_BYTES}",
                self.buffer_bytes
            )));
        }
        if !(100..=600_000).contains(&self.heartbeat_ms) {
            return Err(ConfigError::Invalid(format!(
                "control.heartbeat-ms ({}) must be between 100 and 600000",
                self.heartbeat_ms
            )));
        }
        Ok(())
    }
}

/// The smallest receive buffer accepted (64 KiB).
pub const MIN_BUFFER_BYTES: u64 = 64 * 1024;

fn default_buffer_bytes() -> u64 {
    64 * 1024 * 1024
}

/// 1 s, as control's: a silent control node is given up (and reconnected to) after 3 s.
fn default_heartbeat_ms() -> u64 {
    1_000
}

fn rustls_pki_name(name: &str) -> Result<(), ()> {
    edgepurge_tls::rustls::pki_types::ServerName::try_from(name.to_owned()).map(|_| ()).map_err(|_| ())
}

/// Parses `https://host[:port][/]`.
fn parse_node(url: &str) -> Result<ControlNode, &'static str> {
    let uri: http::Uri = url.parse().map_err(|_| "is not a URL")?;
    if uri.scheme_str() != Some("https") {
        return Err("must start with https://");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("must not have a path or query");
    }
    let host = uri.host().ok_or("has no host")?;
    // `http::Uri` accepts any port text; only a number is a port.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let port_text = authority.strip_prefix(host).and_then(|rest| rest.strip_prefix(':'));
    if port_text.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err("has a port that is not a number from 0 to 65535");
    }
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    if rustls_pki_name(&host).is_err() {
        return Err("has a host that is not a DNS name or IP address");
    }
    Ok(ControlNode { url: url.to_owned(), host, port: uri.port_u16().unwrap_or(443) })
}

/// Where requests for one host go.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OriginConfig {
    /// The `Host` this origin serves (lower-case, no port); `*` matches any host.
    pub host: String,
    /// Base URL of the origin, `http://…` or `https://…`, e.g. `http://127.0.0.1:8080`.
    pub url: OriginUrl,
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

/// A parsed `[[origin]] url`: `http` or `https`, the origin's authority and an optional base
/// path that request paths are appended to. Parsed once when the config is loaded; a request
/// only joins its path to it ([`OriginUrl::join`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct OriginUrl {
    /// As configured (in messages and logs).
    text: String,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The base path without its trailing `/` (empty for none).
    base_path: String,
}

impl OriginUrl {
    /// Parses an origin base URL: `http://` or `https://`, a host, no query or fragment.
    pub fn parse(text: &str) -> Result<OriginUrl, String> {
        let fail = |reason: &str| format!("origin url `{text}` {reason} (e.g. url = \"http://127.0.0.1:8080\")");
        if !(text.starts_with("http://") || text.starts_with("https://")) {
            return Err(fail("must start with http:// or https://"));
        }
        if text.contains('#') {
            return Err(fail("must not have a fragment"));
        }
        let uri: http::Uri = text.parse().map_err(|e| fail(&format!("is not a URL ({e})")))?;
        let parts = uri.into_parts();
        let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
            return Err(fail("has no host"));
        };
        if authority.host().is_empty() {
            return Err(fail("has no host"));
        }
        let path_and_query = parts.path_and_query.as_ref();
        if path_and_query.is_some_and(|p| p.query().is_some()) {
            return Err(fail("must not have a query"));
        }
        let base_path = path_and_query.map_or("", |p| p.path()).trim_end_matches('/').to_owned();
        Ok(OriginUrl { text: text.to_owned(), scheme, authority, base_path })
    }

    /// The URL as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The origin request URI for a request's path and query (which starts with `/`).
    pub fn join(&self, path_and_query: &str) -> Result<http::Uri, http::Error> {
        let path_and_query = if self.base_path.is_empty() {
            path_and_query.to_owned()
        } else {
            format!("{}{path_and_query}", self.base_path)
        };
        http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

impl TryFrom<String> for OriginUrl {
    type Error = String;

    fn try_from(text: String) -> Result<OriginUrl, String> {
        OriginUrl::parse(&text)
    }
}

impl std::fmt::Display for OriginUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
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

/// `[tls]`: the TLS proxy listener (HTTP/1.1 and HTTP/2 by ALPN), serving the same proxy as
/// `listen`: its address and the certificate files every TLS listener has ([`TlsSection`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TlsListenerSection {
    /// Address of the TLS listener.
    pub listen: SocketAddr,
    /// The certificate chain and key (`cert`, `key`).
    #[serde(flatten)]
    pub files: TlsSection,
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
/// `path` is already resolved against the config file's directory, so the message shows where
/// the edge looked.
fn file_exists(key: &str, path: &Path) -> Result<(), ConfigError> {
    if path.is_file() {
        return Ok(());
    }
    let problem = if path.exists() { "is not a file" } else { "does not exist" };
    Err(ConfigError::Invalid(format!(
        "{key}: `{}` {problem} (relative paths in edge.toml are resolved against the file's directory)",
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
    /// Reads and validates a config file; relative paths in it are taken relative to its
    /// directory.
    pub fn load(path: &Path) -> Result<EdgeConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        EdgeConfig::parse(&text, &path.display().to_string())
    }

    /// Parses and validates the text of the config file at `path` (named in messages); relative
    /// paths in it are resolved against `path`'s directory before the files are checked.
    pub fn parse(text: &str, path: &str) -> Result<EdgeConfig, ConfigError> {
        let mut config: EdgeConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
        config.resolve_paths(Path::new(path).parent().unwrap_or(Path::new("")));
        config.validate()?;
        Ok(config)
    }

    /// Makes every relative path relative to `base` (the config file's directory): the TLS
    /// files, the policy, the control files and state directory, the origins' CA files.
    fn resolve_paths(&mut self, base: &Path) {
        let rebase = |p: &mut PathBuf| edgepurge_tls::resolve_against(p, base);
        if let Some(tls) = &mut self.tls {
            tls.files.resolve_against(base);
        }
        if let Some(policy) = &mut self.policy.path {
            rebase(policy);
        }
        if let Some(control) = &mut self.control {
            rebase(&mut control.ca);
            rebase(&mut control.cert);
            rebase(&mut control.key);
            if let Some(crl) = &mut control.crl {
                rebase(crl);
            }
            // An empty state-dir stays empty, so `validate` names it.
            if !control.state_dir.as_os_str().is_empty() {
                rebase(&mut control.state_dir);
            }
        }
        for origin in &mut self.origins {
            if let Some(ca_file) = &mut origin.ca_file {
                rebase(ca_file);
            }
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for origin in &self.origins {
            if let Some(ca_file) = &origin.ca_file {
                file_exists(&format!("origin for host `{}`: ca-file", origin.host), ca_file)?;
            }
        }
        if let Some(tls) = &self.tls {
            file_exists("tls.cert", &tls.files.cert)?;
            file_exists("tls.key", &tls.files.key)?;
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
        if let Some(control) = &self.control {
            control.validate()?;
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

    /// The answer for a host without an origin: what is wrong and how to fix it.
    pub fn no_origin(host: &str) -> String {
        format!(
            "no origin configured for host {host}: add an [[origin]] with host = \"{host}\" (or \"*\") to edge.toml"
        )
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
#[path = "config_tests.rs"]
mod tests;
