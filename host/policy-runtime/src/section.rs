//! The `[policy]` section both roles configure (`edge.toml`, `control.toml`) and its loader: the
//! component file it names, or the built-in defaults, validated in full by the runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::policy::PolicyOptions;
use crate::{LoadedPolicy, PolicyRuntime};

/// `[policy]`: the policy component and its configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PolicySection {
    /// Path of the policy component; none means the built-in defaults.
    pub path: Option<PathBuf>,
    /// The policy's configuration.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// Why a policy could not be installed (the current one keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    /// The configured file could not be read.
    #[error("cannot read policy {path}: {source} (built policies are in target/policies/)")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime refused the component.
    #[error("policy {from} rejected: {source}")]
    Rejected {
        /// Where it came from (a path or `upload`).
        from: String,
        /// The runtime's reason.
        source: crate::Error,
    },
}

/// A policy loaded from a `[policy]` section, with the component's bytes as read.
pub struct LoadedSection {
    /// The validated policy.
    pub policy: LoadedPolicy,
    /// `builtin` or the file's path.
    pub source: String,
    /// The component (none for the built-in defaults): what a control node sends its edges.
    pub bytes: Option<Vec<u8>>,
}

/// Loads the policy a `[policy]` section names: its file, or the built-in defaults. Returns the
/// policy and its source (`builtin` or the path).
pub async fn load_section(section: &PolicySection) -> Result<(LoadedPolicy, String), PolicyLoadError> {
    load_section_component(section).await.map(|loaded| (loaded.policy, loaded.source))
}

/// [`load_section`] keeping the component's bytes: the file is read once, so what is sent to
/// edges is exactly what was validated and installed.
pub async fn load_section_component(section: &PolicySection) -> Result<LoadedSection, PolicyLoadError> {
    let Some(path) = &section.path else {
        let policy = LoadedPolicy::builtin(section.config.clone());
        return Ok(LoadedSection { policy, source: "builtin".to_owned(), bytes: None });
    };
    let from = path.display().to_string();
    let bytes = read(path).await?;
    Ok(LoadedSection { policy: load_bytes(&bytes, section, &from).await?, source: from, bytes: Some(bytes) })
}

async fn read(path: &Path) -> Result<Vec<u8>, PolicyLoadError> {
    tokio::fs::read(path).await.map_err(|source| PolicyLoadError::Read { path: path.display().to_string(), source })
}

/// Loads `bytes` (from `from`, a path or `upload`) with the section's `[policy.config]`.
pub(crate) async fn load_bytes(
    bytes: &[u8],
    section: &PolicySection,
    from: &str,
) -> Result<LoadedPolicy, PolicyLoadError> {
    let options = PolicyOptions { config: section.config.clone(), ..PolicyOptions::default() };
    PolicyRuntime::shared()
        .load(bytes, options)
        .await
        .map_err(|source| PolicyLoadError::Rejected { from: from.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_section_without_a_path_is_the_builtin_defaults_and_a_missing_file_is_named() {
        let loaded = load_section_component(&PolicySection::default()).await.unwrap();
        assert_eq!((loaded.source.as_str(), loaded.bytes.is_none()), ("builtin", true));
        let section = PolicySection { path: Some("/nonexistent/p.wasm".into()), ..PolicySection::default() };
        let err = load_section(&section).await.err().expect("a missing file is refused").to_string();
        assert!(err.contains("/nonexistent/p.wasm") && err.contains("target/policies/"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<PolicySection>("path = \"p.wasm\"\npaht = 1\n").unwrap_err().to_string();
        assert!(err.contains("paht"), "{err}");
    }
}
