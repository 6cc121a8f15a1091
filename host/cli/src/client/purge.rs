//! `edgepurge purge`: submits one purge batch (`POST /v1/purges`) and optionally follows it until
//! every edge applied it.
//!
//! Targets given as flags go as one JSON request; `--file` streams a file (or stdin, `-`) of URLs,
//! one per line, as a `text/plain` bulk body without holding it in memory, so a million-URL file
//! goes out as fast as it is read.
//!
//! Every submission carries an `Idempotency-Key` (`--idempotency-key`, else a random 128-bit hex
//! value): control answers a repeat of a key this token already used with the earlier batch
//! (`replayed: true`) and queues nothing. So when the answer is lost (the connection breaks, no
//! answer in time, a 502/503/504) the same request is sent again with the same key, a few times
//! with back-off ([`submit`]); a `--file` is read again from its start, stdin cannot be, so a
//! stdin body is never retried. The accepted line says which it was and prints the key.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args};
use edgepurge_api::Accepted;
use hyper::body::Bytes;
use serde_json::json;

use super::duration::parse_duration;
use super::http::{ChannelBody, SubmitError, Upload};
use super::{duration_ms, print_json, status, Answer, ApiClient, ConnectArgs};

/// Size of the chunks a `--file` body is read and sent in.
const CHUNK: usize = 256 * 1024;
/// How many times a submission whose answer was lost is sent in all.
pub const ATTEMPTS: u32 = 4;
/// The wait before the first retry; it doubles for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

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
    /// With --wait: give up after this long (e.g. 30s, 5m), exit 3 and name the edges that have
    /// not applied the batch.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "wait")]
    timeout: Option<Duration>,
    /// The submission's Idempotency-Key (default: a random one, printed with the batch): a
    /// repeat with the same key and token queues nothing and answers the earlier batch.
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    idempotency_key: Option<String>,
    /// Print the API's JSON (with --wait: the final status document).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// What is sent, so that it can be sent again.
enum Source {
    Json(Bytes),
    /// A `--file`, read again from its start for each attempt.
    File(PathBuf),
    /// `--file -`: read once.
    Stdin,
}

/// Runs `edgepurge purge`.
pub async fn run(args: PurgeArgs) -> Result<ExitCode> {
    let client = args.connect.client()?;
    let key = match &args.idempotency_key {
        Some(key) => key.clone(),
        None => random_key()?,
    };
    let (path, source) = match &args.file {
        Some(file) if file.as_os_str() == "-" => (bulk_path(args.soft), Source::Stdin),
        Some(file) => (bulk_path(args.soft), Source::File(file.clone())),
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
            ("/v1/purges", Source::Json(Bytes::from(serde_json::to_vec(&request)?)))
        }
    };
    let accepted = submit(&client, path, &source, &key).await?;
    let id = accepted.doc.id.to_string();
    if args.json && !args.wait {
        print_json(&accepted.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        println!("{}", accepted_line(&accepted.doc, &key));
    }
    if args.wait {
        return status::follow(&client, &id, args.json, args.timeout).await;
    }
    Ok(ExitCode::SUCCESS)
}

fn bulk_path(soft: bool) -> &'static str {
    if soft {
        "/v1/purges?soft=true"
    } else {
        "/v1/purges"
    }
}

/// Submits `source` with `key`, sending it again while its answer is lost (at most
/// [`ATTEMPTS`] times, the back-off doubling from [`FIRST_BACKOFF`]); each retry is announced on
/// stderr.
async fn submit(client: &ApiClient, path: &str, source: &Source, key: &str) -> Result<Answer<Accepted>> {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let upload = match source {
            Source::Json(bytes) => Upload::Json(bytes.clone()),
            Source::File(file) => Upload::Stream("text/plain", stream_file(file)?),
            Source::Stdin => Upload::Stream("text/plain", stream_reader(Box::new(std::io::stdin()), "stdin".into())),
        };
        let lost = match client.submit(path, upload, key).await {
            Ok(answer) => return Ok(answer),
            Err(SubmitError::Failed(e)) => return Err(e),
            Err(SubmitError::Lost(e)) => e,
        };
        if let Source::Stdin = source {
            bail!(
                "{lost:#}\nthe purge may or may not have been accepted, and a body read from stdin cannot be sent \
                 again.\nhint: save the URLs to a file and run `edgepurge purge --file FILE --idempotency-key {key}`: \
                 if control accepted the batch it answers with it (replayed) and queues nothing twice"
            );
        }
        if attempt == ATTEMPTS {
            bail!(
                "{lost:#}\nno answer after {ATTEMPTS} attempts: the purge may or may not have been accepted.\n\
                 hint: run the same command with `--idempotency-key {key}`: if control accepted the batch it \
                 answers with it (replayed) and queues nothing twice"
            );
        }
        eprintln!(
            "the answer to the purge was lost ({}); sending it again in {} with the same idempotency key {key} \
             (attempt {} of {ATTEMPTS})",
            first_line(&lost),
            duration_ms(backoff.as_millis() as u64),
            attempt + 1,
        );
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
    unreachable!("the last attempt returns")
}

/// The first line of an error's message (its hint lines are for the final error).
fn first_line(e: &anyhow::Error) -> String {
    format!("{e:#}").lines().next().unwrap_or_default().to_owned()
}

/// `batch 7 accepted: 3 tasks (1 folded), queued at …, idempotency key K`; `accepted earlier
/// (replayed)` when the key matched an earlier batch.
fn accepted_line(accepted: &Accepted, key: &str) -> String {
    let Accepted { id, tasks, folded, .. } = *accepted;
    let how = if accepted.replayed { "accepted earlier (replayed)" } else { "accepted" };
    let mut line = format!("batch {id} {how}: {tasks} task{}", if tasks == 1 { "" } else { "s" });
    if folded > 0 {
        line.push_str(&format!(" ({folded} folded into earlier tasks)"));
    }
    line.push_str(&format!(", queued at {}, idempotency key {key}", accepted.queued_at));
    line
}

/// A random 128-bit idempotency key as 32 lowercase hex digits.
fn random_key() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| {
        anyhow::anyhow!("no randomness from the OS for the idempotency key ({e}); pass --idempotency-key KEY")
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// An `--idempotency-key` as the API accepts it: 1–255 visible ASCII characters.
fn parse_key(key: &str) -> Result<String, String> {
    let visible = key.bytes().all(|b| b.is_ascii_graphic());
    if key.is_empty() || key.len() > 255 || !visible {
        return Err(format!(
            "`{key}` is not an idempotency key: use 1–255 visible ASCII characters (no spaces), e.g. deploy-42"
        ));
    }
    Ok(key.to_owned())
}

/// A body fed by a blocking thread that reads `file` in chunks (from its start).
fn stream_file(file: &Path) -> Result<ChannelBody> {
    let reader =
        std::fs::File::open(file).with_context(|| format!("cannot open the URL file {} (--file)", file.display()))?;
    Ok(stream_reader(Box::new(reader), file.display().to_string()))
}

/// A body fed by a blocking thread that reads `reader` (named `name` in errors) in chunks.
fn stream_reader(mut reader: Box<dyn Read + Send>, name: String) -> ChannelBody {
    let (tx, body) = ChannelBody::new();
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
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accepted_line_names_id_tasks_and_key() {
        let doc = json!({"id": 7, "tasks": 3, "folded": 1, "queued_at": "T", "replayed": false});
        let line = accepted_line(&serde_json::from_value(doc).unwrap(), "k1");
        assert_eq!(line, "batch 7 accepted: 3 tasks (1 folded into earlier tasks), queued at T, idempotency key k1");
        let doc = json!({"id": 7, "tasks": 1, "folded": 0, "queued_at": "T", "replayed": true});
        let line = accepted_line(&serde_json::from_value(doc).unwrap(), "k1");
        assert_eq!(line, "batch 7 accepted earlier (replayed): 1 task, queued at T, idempotency key k1");
    }

    #[test]
    fn keys_are_random_hex_or_visible_ascii() {
        let (a, b) = (random_key().unwrap(), random_key().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a}");
        assert_ne!(a, b);
        assert_eq!(parse_key("deploy-42").unwrap(), "deploy-42");
        for bad in ["", "a b", "é", &"x".repeat(256)] {
            assert!(parse_key(bad).unwrap_err().contains("1–255 visible ASCII"), "{bad}");
        }
    }
}
