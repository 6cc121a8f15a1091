//! # Policy call benchmarks (criterion)
//!
//! What one hook call costs through `edgepurge-policy-runtime`, and what loading a policy
//! costs. Every call group has the same function ids, so ratios read straight off the report:
//!
//! - `builtin` — [`LoadedPolicy::builtin`]: the native defaults, no Wasm (the baseline);
//! - `wasm_pooled` — `target/policies/default.wasm` with `InstanceReuse::Pooled` (the default
//!   limits: an idle instance is reused);
//! - `wasm_fresh` — the same component with `InstanceReuse::Fresh` (instantiate per call).
//!
//! Groups: `select_queue_1x4` and `select_queue_100x4` (a chunk of 1 and of 100 tasks over 4
//! queues), `scope_purge`, `cache_rules`, `cache_key` (the default policy does not declare it:
//! `not_declared` is the short-circuit; `wasm_pooled`/`wasm_fresh` there use
//! `api-read-through.wasm` when it exists and declares `cache-key`), and `compile/load_default`
//! (`PolicyRuntime::load` end to end; the median of `compile_time()` is printed at the end).
//!
//! Run `make policies` first. Figures and the exact command are in `bench/README.md`.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use edgepurge_bench::{
    options, policy_path, read_policy, sample_config, sample_queues, sample_request, sample_response, sample_tasks,
    try_read_policy,
};
use edgepurge_policy_runtime::policy::PolicyOptions;
use edgepurge_policy_runtime::{DecisionSource, InstanceReuse, Limits, LoadedPolicy, PolicyRuntime, RuntimeConfig};
use edgepurge_sdk::{QueueState, RequestMeta, ResponseMeta, Task};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// `now_ms` passed to `select-queue`.
const NOW_MS: u64 = 1_750_000_000_000;

/// The reuse mode of the `wasm_pooled` variants: the production default.
fn pooled() -> InstanceReuse {
    Limits::default().reuse
}

/// One benchmarked hook call with its inputs.
#[derive(Clone, Copy)]
enum Call {
    /// `select-queue` with a chunk of this many tasks.
    SelectQueue(usize),
    ScopePurge,
    CacheRules,
    CacheKey,
}

/// The inputs of every call, built once.
struct Inputs {
    tasks_1: Vec<Task>,
    tasks_100: Vec<Task>,
    queues: Vec<QueueState>,
    request: RequestMeta,
    response: ResponseMeta,
}

impl Inputs {
    fn new() -> Self {
        Inputs {
            tasks_1: sample_tasks(1),
            tasks_100: sample_tasks(100),
            queues: sample_queues(4),
            request: sample_request(),
            response: sample_response(),
        }
    }
}

/// Makes the call once; the decision goes through `black_box`, its source is returned.
async fn call(policy: &LoadedPolicy, input: &Inputs, which: Call) -> DecisionSource {
    match which {
        Call::SelectQueue(n) => {
            let tasks = if n == 1 { &input.tasks_1 } else { &input.tasks_100 };
            black_box(policy.select_queue(tasks, &input.queues, NOW_MS).await).source
        }
        Call::ScopePurge => black_box(policy.scope_purge(&input.tasks_1[0]).await).source,
        Call::CacheRules => black_box(policy.cache_rules(&input.request, &input.response).await).source,
        Call::CacheKey => black_box(policy.cache_key(&input.request).await).source,
    }
}

/// Benchmarks `which` on `policy` as `group/id`, after checking once that the call is answered
/// the way it should (`expected`), so a fallback is never measured as a policy call.
fn bench_call(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    id: &str,
    policy: &LoadedPolicy,
    input: &Inputs,
    which: Call,
    expected: &DecisionSource,
) {
    let source = rt.block_on(call(policy, input, which));
    assert_eq!(&source, expected, "{id}: unexpected decision source before measuring");
    group.bench_function(id, |b| {
        // One `block_on` per batch of iterations, so the executor's cost is not measured.
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(call(policy, input, which).await);
                }
                started.elapsed()
            })
        })
    });
}

/// Loads `bytes` with `options`, or explains why not.
fn load(rt: &Runtime, engine: &PolicyRuntime, bytes: &[u8], options: PolicyOptions) -> Result<LoadedPolicy, String> {
    rt.block_on(engine.load(bytes, options)).map_err(|e| e.to_string())
}

/// The three hook groups of the default policy: builtin vs Wasm pooled vs Wasm fresh.
fn hook_calls(c: &mut Criterion, rt: &Runtime, policies: &[(&str, &LoadedPolicy)], input: &Inputs) {
    let cases = [
        ("select_queue_1x4", Call::SelectQueue(1), Some(1)),
        ("select_queue_100x4", Call::SelectQueue(100), Some(100)),
        ("scope_purge", Call::ScopePurge, None),
        ("cache_rules", Call::CacheRules, None),
    ];
    for (name, which, tasks) in cases {
        let mut group = c.benchmark_group(name);
        if let Some(n) = tasks {
            group.throughput(Throughput::Elements(n));
        }
        for (id, policy) in policies {
            let expected = if *id == "builtin" { DecisionSource::NotDeclared } else { DecisionSource::Policy };
            bench_call(&mut group, rt, id, policy, input, which, &expected);
        }
        group.finish();
    }
}

/// `cache-key`: builtin, the default policy's short-circuit, and `api-read-through` when built
/// and declaring the hook.
fn cache_key(c: &mut Criterion, rt: &Runtime, engine: &PolicyRuntime, builtin: &LoadedPolicy, default: &LoadedPolicy) {
    let input = Inputs::new();
    let mut group = c.benchmark_group("cache_key");
    bench_call(&mut group, rt, "builtin", builtin, &input, Call::CacheKey, &DecisionSource::NotDeclared);
    bench_call(&mut group, rt, "not_declared", default, &input, Call::CacheKey, &DecisionSource::NotDeclared);
    let path = policy_path("api-read-through");
    let Some(bytes) = try_read_policy("api-read-through") else {
        eprintln!("note: {} not built: cache_key/wasm_pooled and wasm_fresh skipped", path.display());
        return group.finish();
    };
    for (id, reuse) in [("wasm_pooled", pooled()), ("wasm_fresh", InstanceReuse::Fresh)] {
        let policy = match load(rt, engine, &bytes, options(reuse)) {
            Ok(p) if p.info().hooks.cache_key => p,
            Ok(_) => {
                eprintln!("note: {} does not declare cache-key: cache_key/{id} skipped", path.display());
                continue;
            }
            Err(e) => {
                eprintln!("note: cannot load {}: {e}: cache_key/{id} skipped", path.display());
                continue;
            }
        };
        eprintln!("note: cache_key/{id} uses {}", path.display());
        bench_call(&mut group, rt, id, &policy, &input, Call::CacheKey, &DecisionSource::Policy);
        report_failures(&format!("api-read-through ({id})"), &policy);
    }
    group.finish();
}

/// `PolicyRuntime::load` end to end (validation, compilation, linking, `describe`); returns
/// every `compile_time()` seen.
fn compile(c: &mut Criterion, rt: &Runtime, engine: &PolicyRuntime, bytes: &[u8]) -> Vec<Duration> {
    let mut compile_times = Vec::new();
    let mut group = c.benchmark_group("compile");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.bench_function("load_default", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let policy = load(rt, engine, bytes, options(pooled())).expect("the default policy loads");
                total += started.elapsed();
                compile_times.push(policy.compile_time());
            }
            total
        })
    });
    group.finish();
    compile_times
}

/// Warns when a policy fell back during the run (its figures would then be wrong).
fn report_failures(name: &str, policy: &LoadedPolicy) {
    let failures = policy.failures();
    if failures.total() > 0 {
        eprintln!("WARNING: {name} fell back {} times during the run: {:?}", failures.total(), failures.counts);
    }
}

fn main() {
    let bytes = read_policy("default");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let engine = PolicyRuntime::new(RuntimeConfig::default()).expect("the policy runtime starts");
    let builtin = LoadedPolicy::builtin(sample_config());
    let pooled_policy = load(&rt, &engine, &bytes, options(pooled())).expect("the default policy loads (pooled)");
    let fresh_policy =
        load(&rt, &engine, &bytes, options(InstanceReuse::Fresh)).expect("the default policy loads (fresh)");
    let hooks = pooled_policy.info().hooks;
    assert!(
        hooks.select_queue && hooks.scope_purge && hooks.cache_rules,
        "{} should declare select-queue, scope-purge and cache-rules; rebuild it with `make policies`",
        policy_path("default").display()
    );

    let mut c = Criterion::default().configure_from_args();
    let input = Inputs::new();
    let policies = [("builtin", &builtin), ("wasm_pooled", &pooled_policy), ("wasm_fresh", &fresh_policy)];
    hook_calls(&mut c, &rt, &policies, &input);
    cache_key(&mut c, &rt, &engine, &builtin, &pooled_policy);
    let mut compile_times = compile(&mut c, &rt, &engine, &bytes);
    c.final_summary();

    report_failures("default (wasm_pooled)", &pooled_policy);
    report_failures("default (wasm_fresh)", &fresh_policy);
    compile_times.sort();
    if let (Some(min), Some(max)) = (compile_times.first(), compile_times.last()) {
        let median = compile_times[compile_times.len() / 2];
        eprintln!(
            "compile_time() of default.wasm ({} bytes) over {} load(s): median {median:.2?} (min {min:.2?}, max {max:.2?})",
            bytes.len(),
            compile_times.len()
        );
    }
}
