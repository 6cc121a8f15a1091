//! `edgepurge control --config control.toml`: opens the database, loads the policy, serves the
//! purge API (and, with `[queue-server]`, the edges' queue transport) until Ctrl-C or SIGTERM,
//! then drains the requests in flight. SIGHUP re-reads the policy file and sends it to every
//! connected edge.

use anyhow::Result;
use clap::Args;
use edgepurge_control::config::ControlConfig;
use edgepurge_control::server::BoundControl;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `edgepurge control`.
#[derive(Args)]
pub struct ControlArgs {
    /// The configuration file (see host/control/control.example.toml).
    #[arg(long, default_value = "control.toml")]
    config: PathBuf,
}

/// Runs the control role until shutdown.
pub async fn run(args: ControlArgs) -> Result<ExitCode> {
    let config = ControlConfig::load(&args.config)?;
    let bound = BoundControl::start(&config).await?;
    let scheme = if bound.is_tls() { "https" } else { "http" };
    println!("control API on {scheme}://{}", bound.local_addr());
    if let Some(queue) = bound.queue_server_addr() {
        println!("queue server on https://{queue}");
    }
    #[cfg(unix)]
    if let Some(state) = bound.state() {
        tokio::spawn(reload_on_sighup(state));
    }
    bound.serve(crate::shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP re-reads the `[policy]` file; the new policy selects queues from then on and goes to
/// every connected edge. One that fails to load is logged and the current one stays.
#[cfg(unix)]
async fn reload_on_sighup(
    state: std::sync::Arc<edgepurge_control::state::AppState<edgepurge_control_store::SqliteStore>>,
) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: policy reload by signal is off (PUT /v1/policy still works)");
        return;
    };
    while hup.recv().await.is_some() {
        match state.reload_policy().await {
            Ok(status) => {
                tracing::info!(policy = %status.name, version = %status.version, "SIGHUP: policy reloaded and sent to the edges")
            }
            Err(e) => tracing::error!(error = %e, "SIGHUP: policy not reloaded; the current one stays"),
        }
    }
}
