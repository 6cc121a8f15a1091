//! The `edgepurge` binary: the edge role (`edgepurge edge`) and the policy tools of the SDK
//! harness (`edgepurge policy check`, `edgepurge policy test`). The control role and the local
//! cluster join as subcommands of this same binary.

mod certs_cmd;
mod client;
mod control_cmd;
mod dev;
mod edge_cmd;
mod policy_cmd;
mod token_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc rather than the system allocator (see the dependency's note in Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run a local cluster: development certificates, a control node, N edges and a demo origin.
    Dev(dev::DevArgs),
    /// Make the certificates of the mutual-TLS queue transport (development CA, edges, CRL).
    #[command(subcommand)]
    Certs(certs_cmd::CertsCommand),
    /// Manage API tokens of the control role.
    #[command(subcommand)]
    Token(token_cmd::TokenCommand),
    /// Check and test policy components (the SDK harness).
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Submit a purge (URLs, prefixes, tags, hosts, everything, or a file of URLs); --wait follows it.
    Purge(client::purge::PurgeArgs),
    /// Show a purge batch's progress per edge; --watch follows it until done.
    Status(client::status::StatusArgs),
    /// List every purge that covered a URL (or --prefix, --tag, --host), with its state per edge.
    Records(client::views::RecordsArgs),
    /// List the registered edges: state, last report, applied offset and lag per queue.
    Edges(client::views::ViewArgs),
    /// List the purge queues: health, depth, pending bytes, speed and expected wait.
    Queues(client::views::ViewArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // A usage error exits 1 like any other error: 2 is reserved for "some edges failed" and 3 for
    // "--timeout passed first" (purge --wait, status --watch), which scripts must be able to
    // tell apart from a typo.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
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
            Command::Dev(args) => dev::run(args).await,
            Command::Token(cmd) => token_cmd::run(cmd).await,
            Command::Certs(cmd) => certs_cmd::run(cmd).await,
            Command::Purge(args) => client::purge::run(args).await,
            Command::Status(args) => client::status::run(args).await,
            Command::Records(args) => client::views::records(args).await,
            Command::Edges(args) => client::views::edges(args).await,
            Command::Queues(args) => client::views::queues(args).await,
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
