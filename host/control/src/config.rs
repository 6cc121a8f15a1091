//! `control.toml`: the API listener (TLS unless on loopback), the database, the queues, the rate
//! limit, the request limits, the policy and the queue server edges connect to.
//! `host/control/control.example.toml` documents every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use edgepurge_policy_runtime::PolicySection;
use edgepurge_sdk::defaults::SPEED_FLOOR_KEY;
use serde::Deserialize;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said (names the key).
        source: toml::de::Error,
    },
    /// A value is out of range or a combination is refused.
    #[error("{0}")]
    Invalid(String),
}

/// The whole `control.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ControlConfig {
    /// Address of the purge API. Plain HTTP only on a loopback address; otherwise `[tls]`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The SQLite database file (created if missing).
    pub database: PathBuf,
    /// Number of durable purge queues.
    #[serde(default = "default_queues")]
    pub queues: u32,
    /// Pacing interval `d` between two tasks of one queue, in ms (S0.3), given to `select-queue`.
    #[serde(default)]
    pub pacing_ms: u32,
    /// S2.3: a target purged again within this many ms of an earlier, still undelivered task is
    /// folded into it instead of queued. 0 (the default) turns folding off.
    #[serde(default)]
    pub fold_window_ms: u64,
    /// S0.2: a queue with pending tasks and no edge progress for this many ms, while another
    /// queue progressed, is unhealthy and gets no new tasks; 0 turns stall detection off.
    #[serde(default = "default_stall_after_ms")]
    pub stall_after_ms: u64,
    /// S0.3 send history: slot length in seconds (default 900 = 15 minutes).
    #[serde(default = "default_slot_secs")]
    pub slot_secs: u64,
    /// S0.3 send history: cycle length in seconds (default 86400 = a day).
    #[serde(default = "default_cycle_secs")]
    pub cycle_secs: u64,
    /// Batches with more tasks than this are never folded (a lookup per task).
    #[serde(default = "default_fold_max_tasks")]
    pub fold_max_tasks: usize,
    /// `[tls]`: the API's certificate; required unless `listen` is a loopback address.
    pub tls: Option<TlsSection>,
    /// `[rate-limit]`: the per-token token bucket.
    #[serde(default)]
    pub rate_limit: RateLimitSection,
    /// `[limits]`: request validation limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// `[retention]`: trimming delivered tasks and expiring old records.
    #[serde(default)]
    pub retention: RetentionSection,
    /// `[policy]`: the policy component (none: the built-in defaults) and its configuration.
    #[serde(default)]
    pub policy: PolicySection,
    /// `[queue-server]`: the mutual-TLS listener edges stream tasks from; none: no edge can
    /// connect (the API still queues).
    pub queue_server: Option<QueueServerSection>,
}

/// `[queue-server]`: where edges connect (HTTP/2 over TLS with a required client certificate).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct QueueServerSection {
    /// Address of the queue server.
    pub listen: SocketAddr,
    /// PEM certificate chain the control node presents to edges.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// PEM CA certificate(s) that sign edge client certificates.
    pub client_ca: PathBuf,
    /// Optional PEM CRL of that CA; revoked edges are refused at the handshake.
    pub crl: Option<PathBuf>,
    /// Optional allow-list of edge names; absent: any edge the CA signed.
    pub edges: Option<Vec<String>>,
    /// Idle time after which a heartbeat is sent; a stream silent for 3× this is dropped. Edges
    /// give up on a stream silent for 3× their own `heartbeat-ms`, so keep this at most 3× theirs
    /// (both default to 1000).
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// This control node's id, sent in `Hello` (default `control`).
    #[serde(default = "default_control_id")]
    pub control_id: String,
}

/// 1 s: a silent edge is declared gone after 3 s (3 missed heartbeats), so `status` and
/// `purge --wait` name it disconnected that soon.
fn default_heartbeat_ms() -> u64 {
    1000
}

fn default_control_id() -> String {
    "control".to_owned()
}

/// `[tls]`: the API's certificate chain and key (the one `TlsSection` of both roles).
pub use edgepurge_tls::TlsSection;

/// `[rate-limit]`: a token bucket per API token; each purge request takes one.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RateLimitSection {
    /// Requests a token may make at once (bucket size).
    pub burst: u32,
    /// Requests per second the bucket refills at.
    pub per_second: f64,
}

impl Default for RateLimitSection {
    fn default() -> Self {
        RateLimitSection { burst: 100, per_second: 10.0 }
    }
}

/// `[retention]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RetentionSection {
    /// Seconds between two retention passes.
    pub interval_secs: u64,
    /// Seconds a batch's records are kept (deleted after that once all its tasks are trimmed).
    pub keep_records_secs: u64,
}

impl Default for RetentionSection {
    fn default() -> Self {
        let d = crate::retention::RetentionSettings::default();
        RetentionSection { interval_secs: d.interval_ms / 1000, keep_records_secs: d.keep_records_ms / 1000 }
    }
}

impl RetentionSection {
    /// The settings the background task runs with.
    pub fn settings(&self) -> crate::retention::RetentionSettings {
        crate::retention::RetentionSettings {
            interval_ms: self.interval_secs.saturating_mul(1000),
            keep_records_ms: self.keep_records_secs.saturating_mul(1000),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LimitsSection {
    /// Largest JSON body, in bytes.
    pub max_json_bytes: usize,
    /// Largest bulk (NDJSON or text) body, in bytes.
    pub max_bulk_bytes: u64,
    /// Most URLs (and other targets) in one batch.
    pub max_urls: usize,
    /// Longest URL, in bytes.
    pub max_url_bytes: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_json_bytes: 8 << 20,
            max_bulk_bytes: 512 << 20,
            max_urls: 1_000_000,
            max_url_bytes: edgepurge_url::DEFAULT_MAX_LEN,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}

fn default_queues() -> u32 {
    4
}

fn default_slot_secs() -> u64 {
    900
}

fn default_cycle_secs() -> u64 {
    86_400
}

fn default_stall_after_ms() -> u64 {
    crate::health::HealthSettings::default().stall_after_ms
}

fn default_fold_max_tasks() -> usize {
    crate::fold::FoldSettings::default().max_tasks
}

impl ControlConfig {
    /// The queue monitor for this configuration (S0.2 health, S0.3 send history).
    pub fn monitor(&self, clock: crate::health::Clock) -> crate::health::QueueMonitor {
        crate::health::QueueMonitor::new(
            crate::health::HealthSettings { stall_after_ms: self.stall_after_ms },
            crate::history::CycleSettings { slot_ms: self.slot_secs * 1000, cycle_ms: self.cycle_secs * 1000 },
            clock,
        )
    }

    /// The folding settings (S2.3).
    pub fn fold(&self) -> crate::fold::FoldSettings {
        crate::fold::FoldSettings { window_ms: self.fold_window_ms, max_tasks: self.fold_max_tasks }
    }

    /// The speed floor of the expected wait (S0.3), in bytes per second: `[policy.config]`'s
    /// `speed-floor-bytes-per-sec` as the built-in `select-queue` reads it (checked at load).
    pub fn speed_floor(&self) -> f64 {
        edgepurge_sdk::defaults::speed_floor(&self.policy.config)
    }

    /// Reads and validates `path`; relative paths in it are taken relative to its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        let mut config = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse { path: path.display().to_string(), source },
            other => other,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &mut PathBuf| edgepurge_tls::resolve_against(p, base);
        rebase(&mut config.database);
        if let Some(tls) = &mut config.tls {
            tls.resolve_against(base);
        }
        if let Some(policy) = &mut config.policy.path {
            rebase(policy);
        }
        if let Some(qs) = &mut config.queue_server {
            rebase(&mut qs.cert);
            rebase(&mut qs.key);
            rebase(&mut qs.client_ca);
            if let Some(crl) = &mut qs.crl {
                rebase(crl);
            }
        }
        Ok(config)
    }

    /// Parses and validates a configuration's text (paths kept as written).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: ControlConfig =
            toml::from_str(text).map_err(|source| ConfigError::Parse { path: "control.toml".into(), source })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and the loopback rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.tls.is_none() && !self.listen.ip().is_loopback() {
            // Tokens travel in every request: plain HTTP off the machine would expose them.
            return invalid(format!(
                "listen = \"{}\" is not a loopback address, so the API needs TLS: add [tls] cert and key, or listen \
                 on 127.0.0.1 for development",
                self.listen
            ));
        }
        if !(1..=1024).contains(&self.queues) {
            return invalid(format!("queues = {} must be between 1 and 1024", self.queues));
        }
        if self.rate_limit.burst == 0 || !(self.rate_limit.per_second > 0.0 && self.rate_limit.per_second.is_finite()) {
            return invalid("[rate-limit] burst must be at least 1 and per-second a positive number".into());
        }
        if self.slot_secs == 0 || self.cycle_secs < self.slot_secs || self.cycle_secs > 366 * 86_400 {
            return invalid(format!(
                "slot-secs = {} and cycle-secs = {}: the slot must be at least 1 s and no longer than the \
                 cycle (at most a year)",
                self.slot_secs, self.cycle_secs
            ));
        }
        if self.retention.interval_secs == 0 {
            return invalid("[retention] interval-secs must be at least 1".into());
        }
        let l = &self.limits;
        if l.max_urls == 0 || l.max_url_bytes < 16 || l.max_json_bytes == 0 || l.max_bulk_bytes == 0 {
            return invalid(
                "[limits]: max-urls, max-json-bytes and max-bulk-bytes must be positive, max-url-bytes at least 16"
                    .into(),
            );
        }
        if let Some(raw) = self.policy.config.get(SPEED_FLOOR_KEY) {
            // The policy would ignore a bad value and fall back to its default; refused here so
            // a typo shows at start rather than as queue choices and waits nobody asked for.
            if !raw.trim().parse::<f64>().is_ok_and(|floor| floor > 0.0) {
                return invalid(format!(
                    "[policy.config] {SPEED_FLOOR_KEY} = \"{raw}\" must be a positive number of bytes per second \
                     (e.g. \"1048576\"), or remove the key for the default"
                ));
            }
        }
        if let Some(qs) = &self.queue_server {
            qs.validate(self.listen)?;
        }
        Ok(())
    }
}

impl QueueServerSection {
    /// Checks the heartbeat range, the control id, the edge names and that the queue server does
    /// not share the API's address.
    pub fn validate(&self, api: SocketAddr) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(format!("[queue-server] {m}")));
        if !(100..=300_000).contains(&self.heartbeat_ms) {
            return invalid(format!("heartbeat-ms = {} must be between 100 and 300000", self.heartbeat_ms));
        }
        if self.control_id.is_empty() || self.control_id.len() > 128 || self.control_id.chars().any(char::is_control) {
            return invalid("control-id must be 1–128 printable characters".into());
        }
        if let Some(edges) = &self.edges {
            if edges.is_empty() {
                return invalid(
                    "edges = [] would refuse every edge: list the allowed edge names, or remove the key to allow \
                     any edge the CA signed"
                        .into(),
                );
            }
            for name in edges {
                if let Err(e) = edgepurge_tls::certs::validate_edge_name(name) {
                    return invalid(format!("edges: {e}"));
                }
            }
        }
        if self.listen == api && self.listen.port() != 0 {
            return invalid(format!(
                "listen = \"{}\" is the API's address too: give the queue server its own port",
                self.listen
            ));
        }
        Ok(())
    }

    /// The heartbeat interval.
    pub fn heartbeat(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.heartbeat_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = ControlConfig::parse("database = \"control.db\"").unwrap();
        assert_eq!(c.queues, 4);
        assert!(c.listen.ip().is_loopback());
        assert_eq!(c.limits.max_urls, 1_000_000);
        assert!(c.policy.path.is_none());
    }

    #[test]
    fn non_loopback_without_tls_is_refused_naming_the_fix() {
        let e = ControlConfig::parse("listen = \"0.0.0.0:8443\"\ndatabase = \"c.db\"").unwrap_err().to_string();
        assert!(e.contains("[tls]"), "{e}");
        let ok = "listen = \"0.0.0.0:8443\"\ndatabase = \"c.db\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"";
        assert!(ControlConfig::parse(ok).is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_ranges_are_refused() {
        assert!(ControlConfig::parse("database = \"c.db\"\nqueue = 3").is_err());
        assert!(ControlConfig::parse("database = \"c.db\"\nqueues = 0").is_err());
        assert!(ControlConfig::parse("database = \"c.db\"\nslot-secs = 0").is_err());
        assert!(
            ControlConfig::parse("database = \"c.db\"\n[retention]\ninterval-secs = 0\nkeep-records-secs = 1").is_err()
        );
        assert!(ControlConfig::parse("database = \"c.db\"\nslot-secs = 100\ncycle-secs = 50").is_err());
        assert!(ControlConfig::parse("database = \"c.db\"\n[rate-limit]\nburst = 0\nper-second = 1.0").is_err());
    }

    #[test]
    fn the_speed_floor_comes_from_the_policy_config_and_a_bad_one_is_refused() {
        let floor = |value: &str| {
            ControlConfig::parse(&format!("database = \"c.db\"\n[policy.config]\n{SPEED_FLOOR_KEY} = \"{value}\""))
        };
        assert_eq!(ControlConfig::parse("database = \"c.db\"").unwrap().speed_floor(), 1_048_576.0);
        assert_eq!(floor(" 2097152 ").unwrap().speed_floor(), 2_097_152.0);
        for bad in ["fast", "0", "-1", ""] {
            let e = floor(bad).unwrap_err().to_string();
            assert!(e.contains(SPEED_FLOOR_KEY) && e.contains("positive number"), "{bad}: {e}");
        }
    }

    #[test]
    fn queue_server_section_is_optional_and_validated() {
        assert!(ControlConfig::parse("database = \"c.db\"").unwrap().queue_server.is_none());
        let base = "database = \"c.db\"\n[queue-server]\nlisten = \"127.0.0.1:7443\"\ncert = \"c.pem\"\nkey = \
                    \"c.key\"\nclient-ca = \"ca.pem\"\n";
        let qs = ControlConfig::parse(base).unwrap().queue_server.unwrap();
        assert_eq!((qs.heartbeat_ms, qs.control_id.as_str(), qs.crl, qs.edges), (1000, "control", None, None));
        let bad = |extra: &str| ControlConfig::parse(&format!("{base}{extra}")).unwrap_err().to_string();
        assert!(bad("heartbeat-ms = 10").contains("heartbeat-ms"));
        assert!(bad("edges = []").contains("remove the key"));
        assert!(bad("edges = [\"Edge 1\"]").contains("edges"));
        assert!(bad("control-id = \"\"").contains("control-id"));
        assert!(bad("client_ca = \"x\"").contains("unknown field"));
        let same = "listen = \"127.0.0.1:7443\"\n".to_owned() + base;
        assert!(ControlConfig::parse(&same).unwrap_err().to_string().contains("own port"));
        let missing = "database = \"c.db\"\n[queue-server]\nlisten = \"127.0.0.1:7443\"\ncert = \"c.pem\"\n";
        assert!(ControlConfig::parse(missing).unwrap_err().to_string().contains("key"));
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../control.example.toml");
        let c = ControlConfig::parse(text).unwrap();
        assert_eq!(c.queues, 4);
        assert_eq!((c.slot_secs, c.cycle_secs, c.stall_after_ms, c.fold_window_ms), (900, 86_400, 60_000, 0));
        assert_eq!(c.retention.settings(), crate::retention::RetentionSettings::default());
        assert!(c.queue_server.is_none(), "commented out, so the example runs without certificates");
        // Uncommented, the documented [queue-server] section is valid as written.
        let (before, after) = text.split_once("# [queue-server]\n").expect("documented");
        let (section, rest) = after.split_once("\n\n").unwrap();
        let section: String = section.lines().map(|l| l.strip_prefix("# ").unwrap_or(l).to_owned() + "\n").collect();
        let c = ControlConfig::parse(&format!("{before}{rest}\n[queue-server]\n{section}")).unwrap();
        let qs = c.queue_server.expect("parsed");
        assert_eq!((qs.heartbeat_ms, qs.control_id.as_str(), qs.edges.map(|e| e.len())), (1000, "control-1", Some(2)));
    }
}
