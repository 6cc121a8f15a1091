//! `edgepurge edge --config edge.toml`: loads the config and the policy, serves until Ctrl-C
//! or SIGTERM, then drains requests in flight.

use anyhow::{Context, Result};
use clap::Args;
use edgepurge_edge::config::EdgeConfig;
use edgepurge_harness::shared_runtime;
use edgepurge_policy_runtime::policy::PolicyOptions;
use edgepurge_policy_runtime::LoadedPolicy;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `edgepurge edge`.
#[derive(Args)]
pub struct EdgeArgs {
    /// The configuration file (see host/edge/edge.example.toml).
    #[arg(long, default_value = "edge.toml")]
    config: PathBuf,
}

/// Runs the edge role until shutdown.
pub async fn run(args: EdgeArgs) -> Result<ExitCode> {
    let config = EdgeConfig::load(&args.config)?;
    let policy = match &config.policy.path {
        None => LoadedPolicy::builtin(config.policy.config.clone()),
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| {
                format!("cannot read policy {} (built policies are in target/policies/)", path.display())
            })?;
            let options = PolicyOptions { config: config.policy.config.clone(), ..PolicyOptions::default() };
            shared_runtime()
                .load(&bytes, options)
                .await
                .with_context(|| format!("policy {} rejected", path.display()))?
        }
    };
    let bound = edgepurge_edge::server::Edge::new(config, policy)?.bind().await?;
    println!("edge proxy on http://{}  admin on http://{}", bound.proxy_addr(), bound.admin_addr());
    bound.serve(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
