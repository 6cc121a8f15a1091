//! `edgepurge token create --config control.toml --name N --hosts 'example.com,*.example.com'
//! [--admin]`: makes an API token, stores only its hash in the control database, and prints the
//! token once on stdout (nothing else goes to stdout, so scripts can capture it).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use edgepurge_control::config::ControlConfig;
use edgepurge_control_store::SqliteStore;
use std::path::PathBuf;
use std::process::ExitCode;

/// `edgepurge token …`.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it (shown only this once).
    Create(CreateArgs),
}

/// Arguments of `edgepurge token create`.
#[derive(Args)]
pub struct CreateArgs {
    /// The control configuration (its `database` and `queues` are used).
    #[arg(long, default_value = "control.toml")]
    config: PathBuf,
    /// A unique name for the token (shown in purge records).
    #[arg(long)]
    name: String,
    /// Comma-separated host patterns the token may purge: `example.com`, `*.example.com`.
    #[arg(long, default_value = "")]
    hosts: String,
    /// May purge any host, tags and `everything`.
    #[arg(long)]
    admin: bool,
}

/// Runs a `token` subcommand.
pub async fn run(cmd: TokenCommand) -> Result<ExitCode> {
    match cmd {
        TokenCommand::Create(args) => {
            let config = ControlConfig::load(&args.config)?;
            let store = SqliteStore::open(&config.database, config.queues)
                .with_context(|| format!("database {}", config.database.display()))?;
            let hosts: Vec<String> = args.hosts.split(',').map(str::to_owned).collect();
            let token = edgepurge_control::auth::create_token(
                &store,
                &args.name,
                &hosts,
                args.admin,
                edgepurge_control::now_ms(),
            )
            .await?;
            eprintln!("token `{}` created; it is shown only once, store it now:", args.name);
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
