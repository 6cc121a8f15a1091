//! `edgepurge records`, `edgepurge edges` and `edgepurge queues`: the API's read-only views
//! (`GET /v1/records`, `/v1/edges`, `/v1/queues`) as aligned tables, or their JSON with `--json`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{ArgGroup, Args};
use serde_json::Value;

use super::http::encode_query;
use super::{bytes, cell, duration_ms, show, table, ConnectArgs};

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
    let doc = client.get_json(&path).await?;
    show(&doc, args.json, records_table)
}

/// One row per request: which batch, what, where it is queued, on how many edges it is applied.
pub fn records_table(doc: &Value) -> String {
    let entries = doc["entries"].as_array().map(Vec::as_slice).unwrap_or_default();
    if entries.is_empty() {
        return "no purge covered it (or its records have expired)\n".to_owned();
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let edges = e["edges"].as_array().map(Vec::as_slice).unwrap_or_default();
            let applied = edges.iter().filter(|x| x["applied"].as_bool() == Some(true)).count();
            let pending: Vec<String> =
                edges.iter().filter(|x| x["applied"].as_bool() != Some(true)).map(|x| cell(&x["edge"])).collect();
            vec![
                cell(&e["batch"]),
                cell(&e["accepted_at"]),
                cell(&e["token"]),
                cell(&e["kind"]),
                cell(&e["target"]),
                if e["soft"].as_bool() == Some(true) { "soft" } else { "hard" }.to_owned(),
                format!(
                    "{}@{}{}",
                    cell(&e["queue"]),
                    cell(&e["offset"]),
                    if e["folded"] == true { " (folded)" } else { "" }
                ),
                format!("{applied}/{}", edges.len()),
                if pending.is_empty() { "-".to_owned() } else { pending.join(",") },
            ]
        })
        .collect();
    let mut out = table(
        &["BATCH", "ACCEPTED", "TOKEN", "KIND", "TARGET", "MODE", "QUEUE@OFFSET", "APPLIED", "PENDING ON"],
        &rows,
    );
    if let Some(next) = doc["next"].as_u64() {
        out.push_str(&format!("more: add --after {next}\n"));
    }
    out
}

/// Runs `edgepurge edges`.
pub async fn edges(args: ViewArgs) -> Result<ExitCode> {
    let doc = args.connect.client()?.get_json("/v1/edges").await?;
    show(&doc, args.json, edges_table)
}

/// One row per edge: state, stream, last report, total lag, policy, applied offset per queue.
pub fn edges_table(doc: &Value) -> String {
    let edges = doc["edges"].as_array().map(Vec::as_slice).unwrap_or_default();
    if edges.is_empty() {
        return "no edge has registered yet (an edge registers when it first connects to the control role)\n"
            .to_owned();
    }
    let rows: Vec<Vec<String>> = edges
        .iter()
        .map(|e| {
            let queues = e["queues"].as_array().map(Vec::as_slice).unwrap_or_default();
            let lag: u64 = queues.iter().filter_map(|q| q["lag"].as_u64()).sum();
            let applied: Vec<String> =
                queues.iter().map(|q| format!("{}:{}", cell(&q["queue"]), cell(&q["applied"]))).collect();
            vec![
                cell(&e["name"]),
                if e["decommissioned_at"].is_null() { "active".to_owned() } else { "decommissioned".to_owned() },
                cell(&e["connected"]),
                cell(&e["last_seen"]),
                lag.to_string(),
                policy(&e["policy"]),
                applied.join(" "),
            ]
        })
        .collect();
    table(&["EDGE", "STATE", "CONNECTED", "LAST SEEN", "LAG", "POLICY", "APPLIED (queue:offset)"], &rows)
}

/// The policy an edge last reported loading: `name version`, or the error it reported.
fn policy(p: &Value) -> String {
    match (p.is_null(), &p["error"]) {
        (true, _) => "-".to_owned(),
        (false, Value::String(error)) => format!("failed: {error}"),
        (false, _) => format!("{} {}", cell(&p["name"]), cell(&p["version"])),
    }
}

/// Runs `edgepurge queues`.
pub async fn queues(args: ViewArgs) -> Result<ExitCode> {
    let doc = args.connect.client()?.get_json("/v1/queues").await?;
    show(&doc, args.json, queues_table)
}

/// One row per queue: health, depth, pending bytes, speed, expected wait, offsets.
pub fn queues_table(doc: &Value) -> String {
    let queues = doc["queues"].as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            let rate = q["speed_bytes_per_sec"].as_u64().map_or("-".to_owned(), |b| format!("{}/s", bytes(b)));
            vec![
                cell(&q["queue"]),
                if q["healthy"].as_bool() == Some(false) { "no" } else { "yes" }.to_owned(),
                cell(&q["depth"]),
                q["pending_bytes"].as_u64().map_or("-".to_owned(), bytes),
                rate,
                q["expected_wait_ms"].as_u64().map_or("-".to_owned(), duration_ms),
                cell(&q["delivered"]),
                format!("{}..{}", cell(&q["first_offset"]), cell(&q["next_offset"])),
                cell(&q["problem"]),
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
            "target": "http://a.com/x", "soft": false, "queue": 1, "offset": 9, "folded": false,
            "edges": [{"edge": "e1", "applied": true}, {"edge": "e2", "applied": false}]}], "next": 12});
        let text = records_table(&doc);
        assert!(text.contains("1@9"), "{text}");
        assert!(text.contains("1/2      e2"), "aligned under PENDING ON: {text}");
        assert!(text.ends_with("more: add --after 12\n"), "{text}");
    }
}
