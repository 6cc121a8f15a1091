//! `edgepurge policy check` and `edgepurge policy test`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use edgepurge_harness::cases::{self, CaseFile};
use edgepurge_harness::{Harness, HookCheckResult};
use edgepurge_policy_runtime::policy::PolicyOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Policy tools.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy as the host will and run each declared hook once on synthetic input.
    Check(CheckArgs),
    /// Run the declarative cases of a CASES.toml file against a policy.
    Test(TestArgs),
}

/// Arguments of `policy check`.
#[derive(Args)]
pub struct CheckArgs {
    /// The policy component (e.g. target/policies/default.wasm).
    policy: PathBuf,
    /// Policy configuration, `key=value` (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Deadline per call in milliseconds (default: the production 10 ms).
    #[arg(long)]
    deadline_ms: Option<u64>,
}

/// Arguments of `policy test`.
#[derive(Args)]
pub struct TestArgs {
    /// The policy component.
    policy: PathBuf,
    /// The cases file.
    cases: PathBuf,
}

/// Runs a policy subcommand; the exit code is 0 only when everything passed.
pub async fn run(cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Check(args) => check(args).await,
        PolicyCommand::Test(args) => test(args).await,
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!("cannot read {} (built policies are in target/policies/; run `make policies`)", path.display())
    })
}

async fn check(args: CheckArgs) -> Result<ExitCode> {
    let bytes = read(&args.policy)?;
    let mut options = PolicyOptions::default();
    for pair in &args.config {
        let Some((k, v)) = pair.split_once('=') else { bail!("--config expects KEY=VALUE, got `{pair}`") };
        options.config.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    if let Some(ms) = args.deadline_ms {
        options.limits.deadline = Duration::from_millis(ms);
    }
    let harness = match Harness::load(&bytes, options).await {
        Ok(h) => h,
        Err(e) => {
            println!("INVALID {}", args.policy.display());
            println!("  {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let p = harness.policy();
    let info = p.info();
    let hooks: Vec<&str> = info.hooks.iter().map(|h| h.wit_name()).collect();
    println!("policy   {} {}", info.name, info.version);
    println!("file     {}", args.policy.display());
    println!("size     {} bytes (limit {})", p.size(), p.limits().max_component_bytes);
    println!("compile  {:.1} ms", p.compile_time().as_secs_f64() * 1e3);
    println!("limits   deadline {:?}, memory {} MiB", p.limits().deadline, p.limits().memory_bytes >> 20);
    println!(
        "hooks    {}",
        if hooks.is_empty() { "none (the built-in defaults answer every hook)".into() } else { hooks.join(", ") }
    );
    let mut failed = 0;
    for check in harness.check_hooks().await {
        let us = check.elapsed.as_secs_f64() * 1e6;
        match &check.result {
            HookCheckResult::Answered(v) => {
                println!("  ok    {:<13} {us:>9.1} µs  {}", check.hook.wit_name(), shorten(v, 100))
            }
            HookCheckResult::Failed(why) => {
                failed += 1;
                println!("  FAIL  {:<13} {us:>9.1} µs  {why}", check.hook.wit_name());
            }
        }
    }
    for line in harness.take_log() {
        println!("  log   {}", shorten(&line, 160));
    }
    if failed > 0 {
        println!(
            "{failed} declared hook(s) failed on synthetic input; the host would use the built-in defaults for them"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn test(args: TestArgs) -> Result<ExitCode> {
    let bytes = read(&args.policy)?;
    let file = CaseFile::read(&args.cases)?;
    if file.cases.is_empty() {
        bail!("{} has no [[case]] entries; add at least one", args.cases.display());
    }
    let reports = cases::run_file(&bytes, &file).await?;
    let passed = reports.iter().filter(|r| r.passed).count();
    println!("{} — {} cases", args.policy.display(), reports.len());
    for r in &reports {
        if r.passed {
            println!("  ok    {}", r.name);
            continue;
        }
        println!("  FAIL  {}", r.name);
        for line in r.failure.as_deref().unwrap_or("").lines() {
            println!("        {line}");
        }
        for line in &r.log {
            println!("        log: {}", shorten(line, 160));
        }
    }
    println!("{passed} passed, {} failed", reports.len() - passed);
    Ok(if passed == reports.len() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    s.chars().take(max).collect::<String>() + "…"
}
