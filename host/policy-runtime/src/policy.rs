//! A loaded policy and its typed hooks.
//!
//! ## Instances
//!
//! A call takes an idle instance from the policy's pool, or instantiates a fresh one from the
//! pre-linked component (`InstancePre`, pooling allocator). After a successful call the
//! instance goes back to the pool (up to `max_idle`); after any failure it is dropped, so a
//! trap or a half-finished call never leaks into the next one. Instances are also retired after
//! `max_calls` calls. Measured numbers for both modes are in ARCHITECTURE.md.
//!
//! ## Failures
//!
//! Every hook returns an [`Outcome`]. When the call traps, passes its deadline, hits the memory
//! cap, cannot be instantiated, or returns something [`crate::returns`] refuses, the outcome
//! holds the built-in default ([`edgepurge_sdk::defaults`], fed the policy's config), the
//! failure is counted by kind and logged once per burst.

use crate::bindings::{Policy as Bindings, PolicyPre};
use crate::failures::{FailureCounts, Failures};
use crate::host::{HostState, Shared};
use crate::{returns, types, validate, Error, FailureKind, InstanceReuse, Limits, LogSink, PolicyRuntime, Result};
use edgepurge_sdk::{
    defaults, CacheDecision, Hook, PolicyInfo, PurgePlan, QueueState, RequestMeta, ResponseMeta, Task,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Store, StoreLimitsBuilder, Trap};

/// How a policy is loaded.
#[derive(Clone, Default)]
pub struct PolicyOptions {
    /// The operator's configuration, answered by the `config` import and fed to the defaults.
    pub config: BTreeMap<String, String>,
    /// Limits of every call.
    pub limits: Limits,
    /// Extra receiver of the policy's log lines (besides `tracing`).
    pub log_sink: Option<Arc<dyn LogSink>>,
}

/// Where a decision came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionSource {
    /// The policy answered.
    Policy,
    /// The policy does not implement the hook: the built-in default answered.
    NotDeclared,
    /// The call failed: the built-in default answered.
    Fallback {
        /// How the call failed.
        kind: FailureKind,
        /// What happened, for logs and the harness.
        detail: String,
    },
}

/// A hook's decision and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<T> {
    /// The decision to apply.
    pub value: T,
    /// Who made it.
    pub source: DecisionSource,
}

impl<T> Outcome<T> {
    /// The failure kind, when the default answered because the call failed.
    pub fn failure(&self) -> Option<FailureKind> {
        match &self.source {
            DecisionSource::Fallback { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// One live instance and its store.
struct Warm {
    store: Store<HostState>,
    bindings: Bindings,
    calls: u64,
}

/// How many times `describe` may pass its deadline at load before the component is refused.
const DESCRIBE_ATTEMPTS: u32 = 3;

/// The compiled component behind a policy (absent for [`LoadedPolicy::builtin`]).
struct Compiled {
    runtime: PolicyRuntime,
    pre: PolicyPre<HostState>,
    pool: Mutex<Vec<Warm>>,
}

/// A validated policy, ready to be called concurrently from many tasks.
pub struct LoadedPolicy {
    info: PolicyInfo,
    shared: Arc<Shared>,
    limits: Limits,
    compiled: Option<Compiled>,
    failures: Failures,
    size: usize,
    compile_time: Duration,
}

type CallResult<T> = std::result::Result<T, (FailureKind, String)>;

impl LoadedPolicy {
    /// A policy with no Wasm that answers every hook with the built-in defaults.
    pub fn builtin(config: BTreeMap<String, String>) -> LoadedPolicy {
        LoadedPolicy {
            info: PolicyInfo {
                name: "builtin".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                hooks: Default::default(),
            },
            shared: Arc::new(Shared { name: "builtin".into(), config: Arc::new(config), sink: None }),
            limits: Limits::default(),
            compiled: None,
            failures: Failures::default(),
            size: 0,
            compile_time: Duration::ZERO,
        }
    }

    /// Validates and loads `bytes`: size limit, compilation, allowed imports, required exports,
    /// the world's types, then one `describe` call under the limits.
    pub async fn load(runtime: &PolicyRuntime, bytes: &[u8], options: PolicyOptions) -> Result<LoadedPolicy> {
        let limits = options.limits;
        if limits.memory_bytes > runtime.config().max_memory_bytes {
            return Err(Error::Config(format!(
                "memory cap {} bytes is above the runtime's maximum {} bytes",
                limits.memory_bytes,
                runtime.config().max_memory_bytes
            )));
        }
        if bytes.len() > limits.max_component_bytes {
            return Err(Error::TooLarge { size: bytes.len(), limit: limits.max_component_bytes });
        }
        let engine = &runtime.inner.engine;
        let started = Instant::now();
        let component = Component::new(engine, bytes).map_err(|e| Error::NotAComponent(format!("{e:#}")))?;
        let compile_time = started.elapsed();
        let forbidden = validate::forbidden_imports(engine, &component);
        if !forbidden.is_empty() {
            return Err(Error::ForbiddenImports(forbidden));
        }
        let missing = validate::missing_exports(engine, &component);
        if !missing.is_empty() {
            return Err(Error::MissingExports(missing));
        }
        let mut linker = Linker::<HostState>::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| Error::Config(format!("{e:#}")))?;
        Bindings::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| Error::Config(format!("{e:#}")))?;
        let pre = linker.instantiate_pre(&component).map_err(|e| Error::WorldMismatch(format!("{e:#}")))?;
        let pre = PolicyPre::new(pre).map_err(|e| Error::WorldMismatch(format!("{e:#}")))?;

        let shared =
            Arc::new(Shared { name: "loading".into(), config: Arc::new(options.config), sink: options.log_sink });
        let mut policy = LoadedPolicy {
            info: PolicyInfo::default(),
            shared,
            limits,
            compiled: Some(Compiled { runtime: runtime.clone(), pre, pool: Mutex::new(Vec::new()) }),
            failures: Failures::default(),
            size: bytes.len(),
            compile_time,
        };
        // `describe` runs under the call deadline like any hook, but on a busy machine the first
        // call of a fresh instance can be descheduled past it: a deadline at load is retried
        // (with a fresh instance, the failed one is dropped) so a valid policy is not refused for
        // the machine's load; a `describe` that really loops is still refused, after a few tries.
        let mut attempts = 1;
        let described = loop {
            match policy.call_describe().await {
                Err((FailureKind::Deadline, _)) if attempts < DESCRIBE_ATTEMPTS => attempts += 1,
                other => break other,
            }
        };
        let info = described
            .map(types::info)
            .and_then(|info| returns::check_info(&info).map(|_| info).map_err(|e| (FailureKind::InvalidReturn, e)))
            .map_err(|(kind, detail)| Error::Describe { kind, detail })?;
        // The instance used for `describe` was made under the placeholder name; start afresh.
        if let Some(c) = &policy.compiled {
            c.pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        let shared = &policy.shared;
        policy.shared = Arc::new(Shared {
            name: info.name.as_str().into(),
            config: shared.config.clone(),
            sink: shared.sink.clone(),
        });
        policy.info = info;
        Ok(policy)
    }

    /// Name, version and hooks from `describe`.
    pub fn info(&self) -> &PolicyInfo {
        &self.info
    }

    /// Size of the component in bytes (0 for the builtin).
    pub fn size(&self) -> usize {
        self.size
    }

    /// How long compiling the component took.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The failure counters so far.
    pub fn failures(&self) -> FailureCounts {
        FailureCounts::of(&self.failures)
    }

    /// Instances currently idle in the pool.
    pub fn idle_instances(&self) -> usize {
        self.compiled.as_ref().map_or(0, |c| c.pool.lock().unwrap_or_else(|e| e.into_inner()).len())
    }

    /// `select-queue`: one queue index per task (see [`defaults::select_queue`]).
    pub async fn select_queue(&self, tasks: &[Task], queues: &[QueueState], now_ms: u64) -> Outcome<Vec<u32>> {
        let default = || defaults::select_queue(tasks, queues, now_ms, &*self.shared.config);
        if !self.info.hooks.select_queue || tasks.is_empty() || queues.is_empty() {
            return Outcome { value: default(), source: DecisionSource::NotDeclared };
        }
        let (wt, wq): (Vec<_>, Vec<_>) =
            (tasks.iter().map(types::task).collect(), queues.iter().map(types::queue).collect());
        let result = match self.begin().await {
            Ok(mut w) => {
                let r = w.bindings.call_select_queue(&mut w.store, &wt, &wq, now_ms).await;
                self.finish(w, r)
            }
            Err(e) => Err(e),
        };
        self.settle(Hook::SelectQueue, result, |v| returns::check_selection(v, tasks, queues), default)
    }

    /// `scope-purge`: the scopes to purge for a task (see [`defaults::scope_purge`]).
    pub async fn scope_purge(&self, task: &Task) -> Outcome<PurgePlan> {
        let default = || defaults::scope_purge(task);
        if !self.info.hooks.scope_purge {
            return Outcome { value: default(), source: DecisionSource::NotDeclared };
        }
        let wt = types::task(task);
        let result = match self.begin().await {
            Ok(mut w) => {
                let r = w.bindings.call_scope_purge(&mut w.store, &wt).await;
                self.finish(w, r).map(types::plan)
            }
            Err(e) => Err(e),
        };
        self.settle(Hook::ScopePurge, result, |p| returns::check_plan(p, task), default)
    }

    /// `cache-rules`: how to cache a response (see [`defaults::cache_rules`]).
    pub async fn cache_rules(&self, request: &RequestMeta, response: &ResponseMeta) -> Outcome<CacheDecision> {
        let default = || defaults::cache_rules(request, response, &*self.shared.config);
        if !self.info.hooks.cache_rules {
            return Outcome { value: default(), source: DecisionSource::NotDeclared };
        }
        let (wr, ws) = (types::request(request), types::response(response));
        let result = match self.begin().await {
            Ok(mut w) => {
                let r = w.bindings.call_cache_rules(&mut w.store, &wr, &ws).await;
                self.finish(w, r).map(types::decision)
            }
            Err(e) => Err(e),
        };
        self.settle(Hook::CacheRules, result, returns::check_decision, default)
    }

    /// `cache-key`: the cache key of a request, `None` for the host's own.
    pub async fn cache_key(&self, request: &RequestMeta) -> Outcome<Option<String>> {
        let default = || defaults::cache_key(request);
        if !self.info.hooks.cache_key {
            return Outcome { value: default(), source: DecisionSource::NotDeclared };
        }
        let wr = types::request(request);
        let result = match self.begin().await {
            Ok(mut w) => {
                let r = w.bindings.call_cache_key(&mut w.store, &wr).await;
                self.finish(w, r)
            }
            Err(e) => Err(e),
        };
        self.settle(Hook::CacheKey, result, returns::check_key, default)
    }

    /// Validates a call's result, or counts the failure and falls back to `default`.
    fn settle<T>(
        &self,
        hook: Hook,
        result: CallResult<T>,
        check: impl FnOnce(&T) -> std::result::Result<(), String>,
        default: impl FnOnce() -> T,
    ) -> Outcome<T> {
        let failure = match result {
            Ok(value) => match check(&value) {
                Ok(()) => return Outcome { value, source: DecisionSource::Policy },
                Err(why) => (FailureKind::InvalidReturn, why),
            },
            Err(failure) => failure,
        };
        let (kind, detail) = failure;
        self.failures.record(&self.shared.name, hook, kind, &detail);
        Outcome { value: default(), source: DecisionSource::Fallback { kind, detail } }
    }

    async fn call_describe(&self) -> CallResult<crate::bindings::wit::PolicyInfo> {
        let mut w = self.begin().await?;
        let r = w.bindings.call_describe(&mut w.store).await;
        self.finish(w, r)
    }

    /// Takes a pooled or fresh instance and arms the per-call deadline and counters.
    async fn begin(&self) -> CallResult<Warm> {
        let Some(compiled) = &self.compiled else {
            return Err((FailureKind::Instantiate, "builtin policy has no component".into()));
        };
        let ticks = self.deadline_ticks(compiled);
        let mut warm = self.checkout(compiled, ticks).await?;
        warm.store.data_mut().begin_call();
        warm.store.set_epoch_deadline(ticks);
        Ok(warm)
    }

    /// Forwards the call's output, returns a healthy instance to the pool, drops a failed one.
    fn finish<T>(&self, mut warm: Warm, result: wasmtime::Result<T>) -> CallResult<T> {
        warm.store.data_mut().end_call();
        warm.calls += 1;
        match result {
            Ok(value) => {
                if let Some(compiled) = &self.compiled {
                    self.checkin(compiled, warm);
                }
                Ok(value)
            }
            Err(e) => Err(classify(&e, warm.store.data().limiter.refused)),
        }
    }

    fn deadline_ticks(&self, compiled: &Compiled) -> u64 {
        let tick = compiled.runtime.config().epoch_tick.as_nanos().max(1);
        (self.limits.deadline.as_nanos().div_ceil(tick) as u64).max(1)
    }

    async fn checkout(&self, compiled: &Compiled, ticks: u64) -> CallResult<Warm> {
        if let Some(warm) = compiled.pool.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(warm);
        }
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .table_elements(self.limits.table_elements)
            .instances(16)
            .tables(16)
            .memories(4)
            .build();
        let state = HostState::new(self.shared.clone(), limits, self.limits.output_bytes);
        let mut store = Store::new(&compiled.runtime.inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks);
        match compiled.pre.instantiate_async(&mut store).await {
            Ok(bindings) => Ok(Warm { store, bindings, calls: 0 }),
            Err(e) => {
                let (kind, detail) = classify(&e, store.data().limiter.refused);
                let kind = if kind == FailureKind::Trap { FailureKind::Instantiate } else { kind };
                Err((kind, format!("instantiation failed: {detail}")))
            }
        }
    }

    fn checkin(&self, compiled: &Compiled, warm: Warm) {
        if let InstanceReuse::Pooled { max_idle, max_calls } = self.limits.reuse {
            let mut pool = compiled.pool.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < max_idle && warm.calls < max_calls {
                pool.push(warm);
            }
        }
    }
}

/// Deadline, memory cap or other trap, with the error's text.
///
/// The detail is the trap itself (`wasm trap: interrupt`), not the wasm backtrace: policies
/// are stripped, so frame numbers would only be noise; what the guest printed (e.g. a panic
/// message on stderr) is forwarded to the log.
fn classify(err: &wasmtime::Error, memory_refused: bool) -> (FailureKind, String) {
    let trap = err.downcast_ref::<Trap>();
    let detail = match trap {
        Some(trap) => trap.to_string(),
        None => err.root_cause().to_string(),
    };
    let kind = if memory_refused {
        FailureKind::Memory
    } else if trap == Some(&Trap::Interrupt) {
        FailureKind::Deadline
    } else {
        FailureKind::Trap
    };
    let detail = match kind {
        FailureKind::Memory => format!("memory cap reached ({detail})"),
        FailureKind::Deadline => format!("deadline passed ({detail})"),
        _ => detail,
    };
    (kind, detail)
}
