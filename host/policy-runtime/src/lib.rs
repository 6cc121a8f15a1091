//! # edgepurge-policy-runtime — the policy sandbox
//!
//! Loads policy components (the `edgepurge:policy` world in `wit/`) into wasmtime and calls
//! their hooks with hard limits, for the control role, the edge role and the SDK harness.
//!
//! - [`PolicyRuntime`] owns the engine (pooling allocator, epoch interruption, async fibers)
//!   and the epoch ticker thread; clone it freely.
//! - [`PolicyRuntime::load`] validates a component (size, forbidden imports, missing exports,
//!   world types, `describe`) and returns a [`LoadedPolicy`].
//! - [`LoadedPolicy`] has one typed async method per hook. Every call returns an [`Outcome`]:
//!   the policy's answer, or the built-in default ([`edgepurge_sdk::defaults`]) when the hook
//!   is not declared or the call failed (trap, deadline, memory cap, invalid return). The host
//!   never panics or hangs because of a policy.
//! - [`LoadedPolicy::builtin`] answers every hook with the defaults without any Wasm.
//! - [`section`] — the `[policy]` section both roles configure ([`PolicySection`]) and its
//!   loader ([`load_section_component`]); [`slot`] — a role's current policy ([`PolicySlot`]),
//!   swapped without dropping calls.
//!
//! Start reading at [`policy`].

mod bindings;
mod failures;
mod host;
mod output;
pub mod policy;
pub mod returns;
pub mod section;
pub mod slot;
mod types;
pub mod validate;

pub use failures::{FailureCounts, FailureKind};
pub use policy::{DecisionSource, LoadedPolicy, Outcome};
pub use section::{load_section, load_section_component, LoadedSection, PolicyLoadError, PolicySection};
pub use slot::{sha256_hex, PolicySlot, PolicyStatus};

use edgepurge_sdk::LogLevel;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Errors of the runtime. Each message says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The component is larger than the size limit.
    #[error("policy is {size} bytes, over the {limit}-byte limit: build it in release mode with opt-level=\"s\", lto and strip, or raise the limit")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a valid WebAssembly component.
    #[error("not a valid WebAssembly component ({0}); build the policy with `cargo build --target wasm32-wasip2`")]
    NotAComponent(String),
    /// The component imports interfaces the sandbox does not offer.
    #[error("policy imports interfaces the sandbox forbids: {}; remove the code that uses files, sockets or other host access", .0.join(", "))]
    ForbiddenImports(Vec<String>),
    /// The component lacks exports of the `policy` world.
    #[error("policy does not export {} of the edgepurge:policy@0.1.0 `policy` world; build it with edgepurge-sdk's `export!`", .0.join(", "))]
    MissingExports(Vec<String>),
    /// The component's imports or exports do not have the world's types.
    #[error("policy does not match the edgepurge:policy@0.1.0 world: {0}; rebuild it against this host's wit/ (same SDK version)")]
    WorldMismatch(String),
    /// `describe` failed or returned something invalid.
    #[error("policy's `describe` failed ({kind}): {detail}")]
    Describe {
        /// How it failed.
        kind: FailureKind,
        /// What happened.
        detail: String,
    },
    /// The runtime or policy configuration is invalid.
    #[error("invalid policy runtime configuration: {0}")]
    Config(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a policy log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// The `log` import.
    Log,
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
}

impl LogSource {
    /// `log`, `stdout` or `stderr`.
    pub fn name(self) -> &'static str {
        match self {
            LogSource::Log => "log",
            LogSource::Stdout => "stdout",
            LogSource::Stderr => "stderr",
        }
    }
}

/// One line a policy logged or printed.
#[derive(Debug, Clone, Copy)]
pub struct LogLine<'a> {
    /// The policy's name.
    pub policy: &'a str,
    /// Where it came from.
    pub source: LogSource,
    /// Its level (`info` for stdout/stderr lines).
    pub level: LogLevel,
    /// The text.
    pub message: &'a str,
}

/// Receives policy log lines in addition to `tracing` (the harness records them).
pub trait LogSink: Send + Sync {
    /// Called for every forwarded line.
    fn record(&self, line: &LogLine<'_>);
}

/// Whether instances are kept for later calls or made fresh for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceReuse {
    /// Keep up to `max_idle` healthy instances and reuse them (the default). An instance is
    /// dropped after any failure and after `max_calls` calls, so no state lives forever.
    Pooled {
        /// Most idle instances kept.
        max_idle: usize,
        /// Calls after which an instance is retired.
        max_calls: u64,
    },
    /// A fresh instance for every call.
    Fresh,
}

/// Limits applied to one policy. Defaults: 10 ms, 32 MiB, 8 MiB component, 64 KiB output.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Deadline of one hook call (epoch interruption).
    pub deadline: Duration,
    /// Memory a policy instance may grow to.
    pub memory_bytes: usize,
    /// Largest accepted component.
    pub max_component_bytes: usize,
    /// stdout and stderr kept per call, each; the rest is dropped and counted.
    pub output_bytes: usize,
    /// Table elements an instance may grow to.
    pub table_elements: usize,
    /// Instance reuse.
    pub reuse: InstanceReuse,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(10),
            memory_bytes: 32 << 20,
            max_component_bytes: 8 << 20,
            output_bytes: 64 << 10,
            table_elements: 20_000,
            reuse: InstanceReuse::Pooled { max_idle: 64, max_calls: 100_000 },
        }
    }
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Epoch tick; deadlines are rounded up to whole ticks.
    pub epoch_tick: Duration,
    /// Most policy instances alive at once across all policies (the pool's size).
    pub max_instances: u32,
    /// The largest memory cap any policy may be given.
    pub max_memory_bytes: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig { epoch_tick: Duration::from_millis(1), max_instances: 256, max_memory_bytes: 64 << 20 }
    }
}

pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    pub(crate) config: RuntimeConfig,
    stop: Arc<AtomicBool>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The shared engine and epoch ticker. Cheap to clone.
#[derive(Clone)]
pub struct PolicyRuntime {
    pub(crate) inner: Arc<RuntimeInner>,
}

impl PolicyRuntime {
    /// Builds the engine and starts the epoch ticker thread (stopped when the last clone and
    /// every policy loaded from it are dropped).
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        let n = config.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        // A Rust policy component is a handful of core instances with one or two memories.
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_memory_size(config.max_memory_bytes);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 << 10)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(|e| Error::Config(format!("{e:#}")))?;

        let stop = Arc::new(AtomicBool::new(false));
        let (ticker_engine, ticker_stop, tick) = (engine.weak(), stop.clone(), config.epoch_tick);
        std::thread::Builder::new()
            .name("edgepurge-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match ticker_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| Error::Config(format!("cannot start the epoch ticker thread: {e}")))?;
        Ok(PolicyRuntime { inner: Arc::new(RuntimeInner { engine, config, stop }) })
    }

    /// The process's runtime with the default configuration, built on first use. Engines
    /// reserve address space for their instance pool, so every role and tool of one process
    /// shares this one rather than building one per policy.
    pub fn shared() -> PolicyRuntime {
        static RUNTIME: std::sync::OnceLock<PolicyRuntime> = std::sync::OnceLock::new();
        RUNTIME
            .get_or_init(|| {
                PolicyRuntime::new(RuntimeConfig::default()).expect("the default runtime configuration is valid")
            })
            .clone()
    }

    /// The runtime's configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Validates and loads a policy component; see [`LoadedPolicy::load`].
    pub async fn load(&self, bytes: &[u8], options: policy::PolicyOptions) -> Result<LoadedPolicy> {
        LoadedPolicy::load(self, bytes, options).await
    }
}
