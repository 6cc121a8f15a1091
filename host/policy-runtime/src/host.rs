//! The per-store host state and the `edgepurge:policy/host` interface (`log`, `config`).
//!
//! Each store gets WASI p2 with no preopened directories, no network, an empty environment,
//! closed stdin and capped stdout/stderr; a resource limiter that caps memory and tables and
//! remembers when it refused a grow (so a memory-cap failure is reported as such, not as a
//! generic trap).

use crate::bindings::{edgepurge::policy::host, wit};
use crate::output::CappedOutput;
use crate::{types, LogLine, LogSink, LogSource};
use edgepurge_sdk::LogLevel;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Longest log line a policy can write; longer ones are cut.
const MAX_LOG_LINE: usize = 4096;
/// Most `log` calls forwarded per hook call; the rest are counted and dropped.
const MAX_LOG_LINES_PER_CALL: u32 = 256;

/// What the host side of one policy shares with all its stores.
pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) config: Arc<BTreeMap<String, String>>,
    pub(crate) sink: Option<Arc<dyn LogSink>>,
}

impl Shared {
    /// Sends one line to `tracing` under the policy's name and to the sink, if any.
    pub(crate) fn emit(&self, source: LogSource, level: LogLevel, message: &str) {
        let policy = &*self.name;
        let src = source.name();
        match level {
            LogLevel::Trace => tracing::trace!(target: "edgepurge::policy", policy, source = src, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "edgepurge::policy", policy, source = src, "{message}"),
            LogLevel::Info => tracing::info!(target: "edgepurge::policy", policy, source = src, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "edgepurge::policy", policy, source = src, "{message}"),
            LogLevel::Error => tracing::error!(target: "edgepurge::policy", policy, source = src, "{message}"),
        }
        if let Some(sink) = &self.sink {
            sink.record(&LogLine { policy, source, level, message });
        }
    }
}

/// A [`StoreLimits`] that remembers whether it refused a grow.
pub(crate) struct Limiter {
    inner: StoreLimits,
    pub(crate) refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        self.refused |= !ok;
        Ok(ok)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let ok = self.inner.table_growing(current, desired, maximum)?;
        self.refused |= !ok;
        Ok(ok)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// The data of one store (one policy instance).
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) stdout: CappedOutput,
    pub(crate) stderr: CappedOutput,
    shared: Arc<Shared>,
    log_lines: u32,
    log_dropped: u32,
}

impl HostState {
    pub(crate) fn new(shared: Arc<Shared>, limits: StoreLimits, output_cap: usize) -> Self {
        let (stdout, stderr) = (CappedOutput::new(output_cap), CappedOutput::new(output_cap));
        // No preopens, no env, no args, no network: the builder's defaults plus explicit denials.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter { inner: limits, refused: false },
            stdout,
            stderr,
            shared,
            log_lines: 0,
            log_dropped: 0,
        }
    }

    /// Resets per-call state before a call.
    pub(crate) fn begin_call(&mut self) {
        self.limiter.refused = false;
        self.log_lines = 0;
        self.log_dropped = 0;
    }

    /// Forwards what the call printed, line by line, and reports dropped output.
    pub(crate) fn end_call(&mut self) {
        for (source, out) in [(LogSource::Stdout, &self.stdout), (LogSource::Stderr, &self.stderr)] {
            let captured = out.drain();
            let text = String::from_utf8_lossy(&captured.bytes);
            for line in text.lines().filter(|l| !l.is_empty()) {
                self.shared.emit(source, LogLevel::Info, line);
            }
            if captured.dropped > 0 {
                let note = format!("{} more bytes of {} dropped (output cap)", captured.dropped, source.name());
                self.shared.emit(source, LogLevel::Warn, &note);
            }
        }
        if self.log_dropped > 0 {
            let note =
                format!("{} more log lines dropped (at most {MAX_LOG_LINES_PER_CALL} per call)", self.log_dropped);
            self.shared.emit(LogSource::Log, LogLevel::Warn, &note);
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wit::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: wit::LogLevel, message: String) {
        if self.log_lines >= MAX_LOG_LINES_PER_CALL {
            self.log_dropped += 1;
            return;
        }
        self.log_lines += 1;
        let mut end = message.len().min(MAX_LOG_LINE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        self.shared.emit(LogSource::Log, types::log_level(level), &message[..end]);
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.shared.config.get(&key).cloned()
    }
}
