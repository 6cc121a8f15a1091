//! `edgepurge records`, `edgepurge edges` and `edgepurge queues`: the API's read-only views
//! (`GET /v1/records`, `/v1/edges`, `/v1/queues`) as aligned tables, or their JSON with `--json`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{ArgGroup, Args};
use edgepurge_api::{EdgeList, EdgePolicyReport, QueueList, RecordPage};

use super::http::encode_query;
use super::{bytes, duration_ms, or_dash, show, table, yes_no, ConnectArgs};

/// Arguments of `edgepurge records`.
#[derive(Args)]
#[command(group(ArgGroup::new("resource").required(true).args(["url", "prefix", "tag", "host"])))]
pub struct RecordsArgs {
    /// The URL whose purges to list (every request that covered it).
    url: Option<String>,
    /// List the purges that covered this URL prefix instead.
    #[arg(long)]
    prefix: Option<String>,
    /// List the purges of this tag instead (admin token).
    #[arg(long)]
    tag: Option<String>,
    /// List the purges that covered this host instead.
    #[arg(long)]
    host: Option<String>,
    /// Start after this cursor (the `next` of the previous page).
    #[arg(long)]
    after: Option<u64>,
    /// Entries per page (the API allows up to 1000).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Arguments of `edgepurge edges` and `edgepurge queues`.
#[derive(Args)]
pub struct ViewArgs {
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Runs `edgepurge records`.
pub async fn records(args: RecordsArgs) -> Result<ExitCode> {
    let client = args.connect.client()?;
    let (key, value) = match (&args.url, &args.prefix, &args.tag, &args.host) {
        (Some(url), ..) => ("url", url),
        (_, Some(prefix), ..) => ("prefix", prefix),
        (_, _, Some(tag), _) => ("tag", tag),
        (.., Some(host)) => ("host", host),
        _ => unreachable!("clap requires one of url, --prefix, --tag, --host"),
    };
    let mut path = format!("/v1/records?{key}={}&limit={}", encode_query(value), args.limit);
    if let Some(after) = args.after {
        path.push_str(&format!("&after={after}"));
    }
    let answer = client.get::<RecordPage>(&path).await?;
    show(&answer, args.json, records_table)
}

/// One row per request: which batch, what, where it is queued, on how many edges it is applied.
pub fn records_table(doc: &RecordPage) -> String {
    if doc.entries.is_empty() {
        return "no purge covered it (or its records have expired)\n".to_owned();
    }
    let rows: Vec<Vec<String>> = doc
        .entries
        .iter()
        .map(|e| {
            let applied = e.edges.iter().filter(|x| x.applied).count();
            let pending: Vec<&str> = e.edges.iter().filter(|x| !x.applied).map(|x| x.edge.as_str()).collect();
            vec![
                e.batch.to_string(),
                e.accepted_at.clone(),
                e.token.clone(),
                e.kind.name().to_owned(),
                e.target.clone(),
                if e.soft { "soft" } else { "hard" }.to_owned(),
                format!("{}@{}{}", e.queue, e.offset, if e.folded { " (folded)" } else { "" }),
                format!("{applied}/{}", e.edges.len()),
                if pending.is_empty() { "-".to_owned() } else { pending.join(",") },
            ]
        })
        .collect();
    let mut out = table(
        &["BATCH", "ACCEPTED", "TOKEN", "KIND", "TARGET", "MODE", "QUEUE@OFFSET", "APPLIED", "PENDING ON"],
        &rows,
    );
    if let Some(next) = doc.next {
        out.push_str(&format!("more: add --after {next}\n"));
    }
    out
}

/// Runs `edgepurge edges`.
pub async fn edges(args: ViewArgs) -> Result<ExitCode> {
    let answer = args.connect.client()?.get::<EdgeList>("/v1/edges").await?;
    show(&answer, args.json, edges_table)
}

/// One row per edge: state, stream, last report, total lag, policy, applied offset per queue.
pub fn edges_table(doc: &EdgeList) -> String {
    if doc.edges.is_empty() {
        return "no edge has registered yet (an edge registers when it first connects to the control role)\n"
            .to_owned();
    }
    let rows: Vec<Vec<String>> = doc
        .edges
        .iter()
        .map(|e| {
            let lag: u64 = e.queues.iter().map(|q| q.lag).sum();
            let applied: Vec<String> = e.queues.iter().map(|q| format!("{}:{}", q.queue, q.applied)).collect();
            vec![
                e.name.clone(),
                if e.decommissioned_at.is_none() { "active" } else { "decommissioned" }.to_owned(),
                yes_no(e.connected),
                or_dash(e.last_seen.as_ref()),
                lag.to_string(),
                policy(e.policy.as_ref()),
                applied.join(" "),
                or_dash(e.events.first().map(|ev| format!("{} {}: {}", ev.at, ev.kind, ev.message))),
            ]
        })
        .collect();
    let header = ["EDGE", "STATE", "CONNECTED", "LAST SEEN", "LAG", "POLICY", "APPLIED (queue:offset)", "LAST EVENT"];
    table(&header, &rows)
}

/// The policy an edge last reported loading: `name version`, or the error it reported.
fn policy(p: Option<&EdgePolicyReport>) -> String {
    match p {
        None => "-".to_owned(),
        Some(EdgePolicyReport { error: Some(error), .. }) => format!("failed: {error}"),
        Some(p) => format!("{} {}", p.name, p.version),
    }
}

/// Runs `edgepurge queues`.
pub async fn queues(args: ViewArgs) -> Result<ExitCode> {
    let answer = args.connect.client()?.get::<QueueList>("/v1/queues").await?;
    show(&answer, args.json, queues_table)
}

/// One row per queue: health, depth, pending bytes, speed, expected wait, offsets.
pub fn queues_table(doc: &QueueList) -> String {
    let rows: Vec<Vec<String>> = doc
        .queues
        .iter()
        .map(|q| {
            vec![
                q.queue.to_string(),
                yes_no(q.healthy),
                or_dash(q.depth),
                q.pending_bytes.map_or("-".to_owned(), bytes),
                format!("{}/s", bytes(q.speed_bytes_per_sec)),
                q.expected_wait_ms.map_or("-".to_owned(), duration_ms),
                or_dash(q.delivered),
                format!("{}..{}", or_dash(q.first_offset), or_dash(q.next_offset)),
                or_dash(q.problem.as_ref()),
            ]
        })
        .collect();
    table(&["QUEUE", "HEALTHY", "DEPTH", "PENDING", "SPEED", "WAIT", "DELIVERED", "OFFSETS", "PROBLEM"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_show_pending_edges_and_the_next_page() {
        let doc = json!({"entries": [{"batch": 3, "accepted_at": "T", "token": "t", "kind": "url",
            "target": "http://a.com/x", "soft": false, "host": "a.com", "queue": 1, "offset": 9, "folded": false,
            "edges": [{"edge": "e1", "applied": true}, {"edge": "e2", "applied": false}]}], "next": 12});
        let doc: RecordPage = serde_json::from_value(doc).unwrap();
        let text = records_table(&doc);
        assert!(text.contains("1@9"), "{text}");
        assert!(text.contains("1/2      e2"), "aligned under PENDING ON: {text}");
        assert!(text.ends_with("more: add --after 12\n"), "{text}");
    }
}
