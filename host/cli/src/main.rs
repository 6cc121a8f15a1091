//! The `edgepurge` binary: the edge role (`edgepurge edge`) and the policy tools of the SDK
//! harness (`edgepurge policy check`, `edgepurge policy test`). The control role and the local
//! cluster join as subcommands of this same binary.

mod certs_cmd;
mod control_cmd;
mod edge_cmd;
mod policy_cmd;
mod token_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// edgepurge — a CDN purge system whose edges run WebAssembly policies.
#[derive(Parser)]
#[command(name = "edgepurge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the edge role: a caching reverse proxy with constant-time purges.
    Edge(edge_cmd::EdgeArgs),
    /// Run the control role: the authenticated purge API over the durable queues.
    Control(control_cmd::ControlArgs),
    /// Make the certificates of the mutual-TLS queue transport (development CA, edges, CRL).
    #[command(subcommand)]
    Certs(certs_cmd::CertsCommand),
    /// Manage API tokens of the control role.
    #[command(subcommand)]
    Token(token_cmd::TokenCommand),
    /// Check and test policy components (the SDK harness).
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Policy(cmd) => policy_cmd::run(cmd).await,
            Command::Edge(args) => edge_cmd::run(args).await,
            Command::Control(args) => control_cmd::run(args).await,
            Command::Token(cmd) => token_cmd::run(cmd).await,
            Command::Certs(cmd) => certs_cmd::run(cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM: how both roles are told to stop (then they drain requests in flight).
pub(crate) async fn shutdown_signal() {
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
