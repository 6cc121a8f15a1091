//! `edgepurge purge`: submits one purge batch (`POST /v1/purges`) and optionally follows it until
//! every edge applied it.
//!
//! Targets given as flags go as one JSON request; `--file` streams a file (or stdin, `-`) of URLs,
//! one per line, as a `text/plain` bulk body without holding it in memory, so a million-URL file
//! goes out as fast as it is read.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{ArgGroup, Args};
use edgepurge_api::Accepted;
use hyper::body::Bytes;
use serde_json::json;

use super::http::ChannelBody;
use super::{print_json, status, ConnectArgs};

/// Size of the chunks a `--file` body is read and sent in.
const CHUNK: usize = 256 * 1024;

/// Arguments of `edgepurge purge`.
#[derive(Args)]
#[command(group(
    ArgGroup::new("target").required(true).multiple(true)
        .args(["urls", "prefixes", "tags", "hosts", "everything", "file"])
))]
pub struct PurgeArgs {
    /// Absolute http(s) URLs to purge.
    #[arg(long = "url", value_name = "URL", num_args = 1..)]
    urls: Vec<String>,
    /// URL prefixes to purge (everything under them).
    #[arg(long = "prefix", value_name = "PREFIX", num_args = 1..)]
    prefixes: Vec<String>,
    /// Tags to purge (admin token).
    #[arg(long = "tag", value_name = "TAG", num_args = 1..)]
    tags: Vec<String>,
    /// Hosts to purge entirely.
    #[arg(long = "host", value_name = "HOST", num_args = 1..)]
    hosts: Vec<String>,
    /// Purge everything on every edge (admin token).
    #[arg(long)]
    everything: bool,
    /// A file of URLs, one per line (`-` for stdin), sent as a streamed text/plain bulk body.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["urls", "prefixes", "tags", "hosts", "everything", "warm"])]
    file: Option<PathBuf>,
    /// Soft purge: mark stale instead of removing.
    #[arg(long)]
    soft: bool,
    /// Fetch each purged URL into the caches again afterwards (not with --file).
    #[arg(long)]
    warm: bool,
    /// Follow the batch until every edge applied it (exit 2 if some edges failed tasks).
    #[arg(long)]
    wait: bool,
    /// Print the API's JSON (with --wait: the final status document).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Runs `edgepurge purge`.
pub async fn run(args: PurgeArgs) -> Result<ExitCode> {
    let client = args.connect.client()?;
    let accepted = match &args.file {
        Some(file) => {
            let body = stream_file(file.clone())?;
            let path = if args.soft { "/v1/purges?soft=true" } else { "/v1/purges" };
            client.post_stream::<Accepted>(path, "text/plain", body).await?
        }
        None => {
            let request = json!({
                "urls": args.urls,
                "prefixes": args.prefixes,
                "tags": args.tags,
                "hosts": args.hosts,
                "everything": args.everything,
                "soft": args.soft,
                "warm": args.warm,
            });
            client.post_json::<Accepted>("/v1/purges", &request).await?
        }
    };
    let id = accepted.doc.id.to_string();
    if args.json && !args.wait {
        print_json(&accepted.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        println!("{}", accepted_line(&accepted.doc));
    }
    if args.wait {
        return status::follow(&client, &id, args.json).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// `batch 7 accepted: 3 tasks (1 folded), queued at …`.
fn accepted_line(accepted: &Accepted) -> String {
    let Accepted { id, tasks, folded, .. } = *accepted;
    let mut line = format!("batch {id} accepted: {tasks} task{}", if tasks == 1 { "" } else { "s" });
    if folded > 0 {
        line.push_str(&format!(" ({folded} folded into earlier tasks)"));
    }
    line.push_str(&format!(", queued at {}", accepted.queued_at));
    if accepted.replayed {
        line.push_str(" (replayed: an earlier batch with the same idempotency key)");
    }
    line
}

/// A body fed by a blocking thread that reads `file` (or stdin for `-`) in chunks.
fn stream_file(file: PathBuf) -> Result<ChannelBody> {
    let mut reader: Box<dyn Read + Send> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(&file)
                .with_context(|| format!("cannot open the URL file {} (--file)", file.display()))?,
        )
    };
    let (tx, body) = ChannelBody::new();
    let name = file.display().to_string();
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let item = match reader.read(&mut buffer) {
                Ok(0) => return,
                Ok(n) => Ok(Bytes::copy_from_slice(&buffer[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(std::io::Error::new(e.kind(), format!("reading {name}: {e}"))),
            };
            let failed = item.is_err();
            // The receiver is gone when the request failed; its error is reported there.
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accepted_line_names_id_and_tasks() {
        let doc = json!({"id": 7, "tasks": 3, "folded": 1, "queued_at": "T", "replayed": false});
        let line = accepted_line(&serde_json::from_value(doc).unwrap());
        assert_eq!(line, "batch 7 accepted: 3 tasks (1 folded into earlier tasks), queued at T");
    }
}
