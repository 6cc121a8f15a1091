//! `edgepurge certs init|issue|revoke`: the certificates of the mutual-TLS queue transport (a
//! development CA, the control server, the edges, the CRL). The work is in
//! `edgepurge_tls::certs`, which `edgepurge dev` and the tests call too; this file parses the
//! arguments and prints what was written.

use anyhow::Result;
use clap::{Args, Subcommand};
use edgepurge_tls::certs;
use std::path::PathBuf;
use std::process::ExitCode;

/// `edgepurge certs …`.
#[derive(Subcommand)]
pub enum CertsCommand {
    /// Create a development CA, a control server certificate, N edge certificates and an empty CRL.
    Init(InitArgs),
    /// Add one edge certificate signed by the directory's CA.
    Issue(IssueArgs),
    /// Revoke an edge's certificate: add its serial to the directory's CRL.
    Revoke(EdgeArgs),
}

/// Arguments of `edgepurge certs init`.
#[derive(Args)]
pub struct InitArgs {
    /// The directory to write (created if missing).
    dir: PathBuf,
    /// How many edge certificates (`edge-1` … `edge-N`).
    #[arg(long, default_value_t = certs::DEFAULT_EDGES)]
    edges: usize,
    /// An extra DNS name or IP address for the control certificate (repeatable).
    #[arg(long = "san", value_name = "NAME")]
    sans: Vec<String>,
    /// Replace an existing CA (every certificate it issued is replaced or deleted).
    #[arg(long)]
    force: bool,
}

/// Arguments of `edgepurge certs issue` and `edgepurge certs revoke`.
#[derive(Args)]
pub struct EdgeArgs {
    /// The certificate directory (holding `ca.pem` and `ca.key`).
    #[arg(long)]
    dir: PathBuf,
    /// The edge's name: lowercase letters, digits and `-`.
    #[arg(long)]
    edge: String,
}

/// Arguments of `edgepurge certs issue`.
#[derive(Args)]
pub struct IssueArgs {
    #[command(flatten)]
    edge: EdgeArgs,
    /// How long the certificate is valid, in days (short-lived certificates are renewed by
    /// issuing again; both roles pick up new files without a restart).
    #[arg(long, default_value_t = certs::DEFAULT_LEAF_DAYS, value_parser = clap::value_parser!(i64).range(1..=3650))]
    days: i64,
}

/// Runs a `certs` subcommand.
pub async fn run(cmd: CertsCommand) -> Result<ExitCode> {
    match cmd {
        CertsCommand::Init(args) => {
            let made = certs::init(&args.dir, args.edges, &args.sans, args.force)?;
            for path in &made.removed {
                println!("removed {}", path.display());
            }
            for path in &made.written {
                println!("wrote {}", path.display());
            }
            println!(
                "development CA in {} with {} edge certificate(s); keep ca.key private (in production, use your own CA)",
                made.layout.dir.display(),
                made.edges.len()
            );
        }
        CertsCommand::Issue(args) => {
            let validity = certs::Validity::days(args.days);
            let files = certs::issue_edge_valid(&args.edge.dir, &args.edge.edge, validity)?;
            println!("wrote {}", files.key.display());
            println!("wrote {}", files.cert.display());
        }
        CertsCommand::Revoke(args) => {
            let revoked = certs::revoke_edge(&args.dir, &args.edge)?;
            println!("revoked edge `{}` (serial {}); updated {}", revoked.name, revoked.serial, revoked.crl.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
