//! `edgepurge status ID [--watch [--timeout DURATION]] [--json]`: a batch's status document as a
//! summary and a per-edge table (`progress::status_table`), or followed until it is applied
//! everywhere (`follow`, shared with `edgepurge purge --wait`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use edgepurge_api::BatchStatus;

use super::duration::parse_duration;
use super::http::encode_query;
use super::progress::status_table;
use super::{show, ConnectArgs};

pub use super::follow::follow;

/// Arguments of `edgepurge status`.
#[derive(Args)]
pub struct StatusArgs {
    /// The batch id (printed by `edgepurge purge`).
    id: String,
    /// Follow the batch until it is applied everywhere (exit 2 if some edges failed tasks).
    #[arg(long)]
    watch: bool,
    /// With --watch: give up after this long (e.g. 30s, 5m), exit 3 and name the edges that have
    /// not applied the batch.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "watch")]
    timeout: Option<Duration>,
    /// Print the API's JSON status document instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Runs `edgepurge status`.
pub async fn run(args: StatusArgs) -> Result<ExitCode> {
    let client = args.connect.client()?;
    let id = args.id.trim();
    if args.watch {
        return follow(&client, id, args.json, args.timeout).await;
    }
    let answer = client.get::<BatchStatus>(&format!("/v1/purges/{}", encode_query(id))).await?;
    show(&answer, args.json, status_table)
}
