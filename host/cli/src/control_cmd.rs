//! `edgepurge control --config control.toml`: opens the database, loads the policy, serves the
//! purge API until Ctrl-C or SIGTERM, then drains the requests in flight.

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
    bound.serve(crate::shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}
