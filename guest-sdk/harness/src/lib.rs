//! # edgepurge-harness — test policies locally in the production sandbox
//!
//! [`Harness`] loads a built `.wasm` into exactly the sandbox the host uses
//! ([`edgepurge_policy_runtime`], same limits by default), calls each hook, and records what the
//! policy logged or printed. [`cases`] runs declarative `cases.toml` files (what
//! `edgepurge policy test` runs), and [`Harness::check_hooks`] runs every declared hook once on
//! synthetic input (what `edgepurge policy check` runs).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use edgepurge_harness::Harness;
//! use edgepurge_sdk::{Task, TaskKind};
//! let harness = Harness::load_file("target/policies/default.wasm".as_ref(), Default::default()).await?;
//! let task = Task { kind: TaskKind::Prefix, target: "https://a.com/img/".into(), host: "a.com".into(), ..Default::default() };
//! let outcome = harness.policy().scope_purge(&task).await;
//! assert!(outcome.failure().is_none(), "log: {:?}", harness.take_log());
//! # Ok(()) }
//! ```

pub mod cases;
mod check;

pub use check::{HookCheck, HookCheckResult};

use edgepurge_policy_runtime::policy::PolicyOptions;
use edgepurge_policy_runtime::{LoadedPolicy, LogLine, LogSink, PolicyRuntime};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Errors of the harness; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The policy was rejected by the runtime.
    #[error("policy rejected: {0}")]
    Rejected(#[from] edgepurge_policy_runtime::Error),
    /// A cases file is not valid.
    #[error("{path}: {message}")]
    Cases {
        /// The file.
        path: String,
        /// What is wrong and where.
        message: String,
    },
}

/// `Result` with the harness [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Records every log line of a policy as `level source: message`.
#[derive(Default)]
pub struct RecordingSink {
    lines: Mutex<Vec<String>>,
}

impl LogSink for RecordingSink {
    fn record(&self, line: &LogLine<'_>) {
        let text = format!("{:?} {}: {}", line.level, line.source.name(), line.message);
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).push(text);
    }
}

/// The process's shared runtime ([`PolicyRuntime::shared`]).
pub fn shared_runtime() -> PolicyRuntime {
    PolicyRuntime::shared()
}

/// A policy loaded into the production sandbox, with its log recorded.
pub struct Harness {
    policy: LoadedPolicy,
    log: Arc<RecordingSink>,
}

impl Harness {
    /// Loads `bytes` with `options` (its `log_sink` is replaced by the recorder).
    pub async fn load(bytes: &[u8], mut options: PolicyOptions) -> Result<Harness> {
        let log = Arc::new(RecordingSink::default());
        options.log_sink = Some(log.clone());
        let policy = shared_runtime().load(bytes, options).await?;
        Ok(Harness { policy, log })
    }

    /// Reads and loads a `.wasm` file.
    pub async fn load_file(path: &Path, options: PolicyOptions) -> Result<Harness> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read { path: path.display().to_string(), source })?;
        Harness::load(&bytes, options).await
    }

    /// The loaded policy: call its hooks directly.
    pub fn policy(&self) -> &LoadedPolicy {
        &self.policy
    }

    /// Takes the log lines recorded since the last call.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lines.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
