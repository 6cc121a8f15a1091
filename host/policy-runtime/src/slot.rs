//! The current policy of a role, swappable without dropping calls: callers clone the `Arc` and
//! keep using the policy they started with, while new requests and tasks see the replacement.
//!
//! A replacement comes from the configured file (the edge's `[policy] path`, re-read on SIGHUP
//! or `POST /policy/reload`; control's `PUT /v1/policy`) or from bytes uploaded or received
//! from control. It is loaded and validated in full by the runtime before it is installed; a
//! rejected policy leaves the current one serving.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::Serialize;

use crate::section::{load_bytes, load_section_component, PolicyLoadError, PolicySection};
use crate::LoadedPolicy;

/// What is serving: the policy's `describe` and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyStatus {
    /// Name from `describe` (`builtin` for the built-in defaults).
    pub name: String,
    /// Version from `describe`.
    pub version: String,
    /// `builtin`, the file path, or `upload`.
    pub source: String,
    /// Component size in bytes (0 for the built-in defaults).
    pub size_bytes: usize,
    /// When it was installed (seconds since the Unix epoch).
    pub installed_at: u64,
    /// Calls that fell back to the defaults since it was installed.
    pub failures: u64,
    /// Lowercase hex SHA-256 of the component's bytes (none for the built-in defaults and
    /// policies installed without their bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

struct Current {
    policy: Arc<LoadedPolicy>,
    source: String,
    installed_at: SystemTime,
    sha256: Option<String>,
}

/// Lowercase hex SHA-256 of `bytes`, as policies are identified on the queue transport.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A shared, replaceable policy.
#[derive(Clone)]
pub struct PolicySlot {
    inner: Arc<RwLock<Current>>,
}

impl PolicySlot {
    /// A slot holding `policy` (its source described as `builtin` or `initial`).
    pub fn new(policy: LoadedPolicy) -> Self {
        let source = if policy.size() == 0 { "builtin".to_owned() } else { "initial".to_owned() };
        let current = Current { policy: Arc::new(policy), source, installed_at: SystemTime::now(), sha256: None };
        PolicySlot { inner: Arc::new(RwLock::new(current)) }
    }

    /// The policy to use for one request or task.
    pub fn current(&self) -> Arc<LoadedPolicy> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).policy.clone()
    }

    /// Installs a new policy; calls in flight finish on the old one.
    pub fn replace(&self, policy: LoadedPolicy) {
        self.install(policy, "replaced".to_owned(), None);
    }

    fn install(&self, policy: LoadedPolicy, source: String, sha256: Option<String>) {
        let mut current = self.inner.write().unwrap_or_else(|e| e.into_inner());
        *current = Current { policy: Arc::new(policy), source, installed_at: SystemTime::now(), sha256 };
    }

    /// The SHA-256 of what is serving, when it was installed from bytes.
    pub fn sha256(&self) -> Option<String> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).sha256.clone()
    }

    /// What is serving now.
    pub fn status(&self) -> PolicyStatus {
        let current = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let info = current.policy.info();
        PolicyStatus {
            name: info.name.clone(),
            version: info.version.clone(),
            source: current.source.clone(),
            size_bytes: current.policy.size(),
            installed_at: current.installed_at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            failures: current.policy.failures().total(),
            sha256: current.sha256.clone(),
        }
    }

    /// Loads the `[policy]` section (the file, or the built-in defaults when it names none) and
    /// installs it.
    pub async fn reload(&self, section: &PolicySection) -> Result<PolicyStatus, PolicyLoadError> {
        self.reload_component(section).await.map(|(status, _)| status)
    }

    /// [`reload`](Self::reload), also returning the component's bytes as read (none for the
    /// built-in defaults), so a control node can send edges exactly what it installed.
    pub async fn reload_component(
        &self,
        section: &PolicySection,
    ) -> Result<(PolicyStatus, Option<Vec<u8>>), PolicyLoadError> {
        let loaded = load_section_component(section).await?;
        let sha256 = loaded.bytes.as_deref().map(sha256_hex);
        self.install(loaded.policy, loaded.source, sha256);
        Ok((self.status(), loaded.bytes))
    }

    /// Loads an uploaded component with the configured `[policy.config]` and installs it.
    pub async fn upload(&self, bytes: &[u8], section: &PolicySection) -> Result<PolicyStatus, PolicyLoadError> {
        self.upload_from(bytes, section, "upload").await
    }

    /// [`upload`](Self::upload) naming where the bytes came from (`control:<id>` for a policy
    /// distributed by a control node).
    pub async fn upload_from(
        &self,
        bytes: &[u8],
        section: &PolicySection,
        source: &str,
    ) -> Result<PolicyStatus, PolicyLoadError> {
        let policy = load_bytes(bytes, section, source).await?;
        self.install(policy, source.to_owned(), Some(sha256_hex(bytes)));
        Ok(self.status())
    }
}
