//! The builder harness of the end-to-end tests.
//!
//! ```no_run
//! # async fn t() -> anyhow::Result<()> {
//! use edgepurge_tests::PolicyTest;
//! let h = PolicyTest::using_fixture("panic").deadline_ms(50).load().await?;
//! # Ok(()) }
//! ```
//!
//! Components come from `make policies`: shipped policies in `target/policies/`, hostile
//! fixtures (crates under `tests/fixtures/`) in `target/fixtures/`. A missing file fails the
//! test with the command that builds it.

use anyhow::{Context, Result};
use edgepurge_harness::Harness;
use edgepurge_policy_runtime::policy::PolicyOptions;
use edgepurge_policy_runtime::InstanceReuse;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Reads a built component, or fails saying how to build it.
pub fn component(dir: &str, name: &str) -> Vec<u8> {
    let path = repo_root().join("target").join(dir).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}; run `make policies` first", path.display()))
}

/// Every fixture crate under `tests/fixtures/`, so a test can check each one has a test.
pub fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("tests/fixtures"))
        .expect("tests/fixtures exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The deadline of tests that are not about the deadline. These machines are shared and
/// noisy: a call preempted for more than the production 10 ms must not fail a test about
/// something else. Tests about the deadline set it with [`PolicyTest::deadline_ms`].
pub const GENEROUS_DEADLINE: Duration = Duration::from_secs(5);

/// A policy under test: which component, with which config and limits.
pub struct PolicyTest {
    bytes: Vec<u8>,
    options: PolicyOptions,
}

impl PolicyTest {
    /// A shipped policy from `target/policies/`.
    pub fn using_policy(name: &str) -> Self {
        PolicyTest::using_bytes(component("policies", name))
    }

    /// A hostile fixture from `target/fixtures/`.
    pub fn using_fixture(name: &str) -> Self {
        PolicyTest::using_bytes(component("fixtures", name))
    }

    /// Raw component bytes (e.g. from `wat`).
    pub fn using_bytes(bytes: Vec<u8>) -> Self {
        let mut options = PolicyOptions::default();
        options.limits.deadline = GENEROUS_DEADLINE;
        PolicyTest { bytes, options }
    }

    /// Adds a policy config entry.
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.options.config.insert(key.into(), value.into());
        self
    }

    /// Sets the per-call deadline.
    pub fn deadline_ms(mut self, ms: u64) -> Self {
        self.options.limits.deadline = Duration::from_millis(ms);
        self
    }

    /// Sets the size limit of the component.
    pub fn max_component_bytes(mut self, bytes: usize) -> Self {
        self.options.limits.max_component_bytes = bytes;
        self
    }

    /// Sets instance reuse.
    pub fn reuse(mut self, reuse: InstanceReuse) -> Self {
        self.options.limits.reuse = reuse;
        self
    }

    /// Loads it into the production sandbox.
    pub async fn load(self) -> Result<Harness> {
        Harness::load(&self.bytes, self.options).await.context("loading the policy")
    }

    /// Loads it and expects the load to fail; returns the error text.
    pub async fn load_err(self) -> String {
        match Harness::load(&self.bytes, self.options).await {
            Ok(h) => panic!("expected the load to fail, but `{}` loaded", h.policy().info().name),
            Err(e) => e.to_string(),
        }
    }
}
