//! `edgepurge edge --config edge.toml`: loads the config and the policy, serves until Ctrl-C
//! or SIGTERM, then drains requests in flight. SIGHUP swaps in the policy the config file names.

use anyhow::Result;
use clap::Args;
use edgepurge_edge::config::EdgeConfig;
use edgepurge_policy_runtime::{load_section, PolicySlot};
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
    let bound = start(EdgeConfig::load(&args.config)?).await?;
    match bound.tls_addr() {
        Some(tls) => println!(
            "edge proxy on http://{} and https://{tls}  admin on http://{}",
            bound.proxy_addr(),
            bound.admin_addr()
        ),
        None => println!("edge proxy on http://{}  admin on http://{}", bound.proxy_addr(), bound.admin_addr()),
    }
    #[cfg(unix)]
    tokio::spawn(reload_on_sighup(args.config.clone(), bound.policy()));
    bound.serve(crate::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Loads `config`'s policy and binds the edge's listeners (also how `edgepurge dev` starts its
/// edges).
pub(crate) async fn start(config: EdgeConfig) -> Result<edgepurge_edge::server::BoundEdge> {
    let (policy, source) = load_section(&config.policy).await?;
    tracing::info!(policy = %policy.info().name, version = %policy.info().version, %source, "policy loaded");
    edgepurge_edge::server::Edge::new(config, policy)?.bind().await
}

/// SIGHUP re-reads the config file's `[policy]` section and swaps the policy in; requests in
/// flight finish on the old one. A policy that fails to load is logged and the old one stays.
#[cfg(unix)]
async fn reload_on_sighup(config_path: PathBuf, slot: PolicySlot) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: policy reload by signal is off (POST /policy/reload still works)");
        return;
    };
    while hup.recv().await.is_some() {
        let section = match EdgeConfig::load(&config_path) {
            Ok(config) => config.policy,
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: config not reloaded; the current policy keeps serving");
                continue;
            }
        };
        match slot.reload(&section).await {
            Ok(status) => {
                tracing::info!(policy = %status.name, version = %status.version, source = %status.source, "SIGHUP: policy swapped")
            }
            Err(e) => tracing::error!(error = %e, "SIGHUP: the current policy keeps serving"),
        }
    }
}
