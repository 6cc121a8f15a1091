//! Million-URL batch: one bulk request of N distinct URLs (1,000,000 by default) to a cluster of
//! `edgepurge dev --edges E` (4 by default), measured end to end.
//!
//! For each run a fresh cluster is started (control, E edges over mutual TLS on loopback, the
//! demo origin; one release process), then one `text/plain` `POST /v1/purges` carries all N URLs.
//! Measured from the moment the request starts: **accept** (until the `202`: validated,
//! normalised, de-duplicated and durably queued), each edge's **applied** time (the first status
//! read where its applied count reaches the batch's total) and **done** (the status says `done`:
//! applied on every edge). The status is read every 20 ms, which bounds the error of each time.
//! The baseline measured in the same run is the accept rate (control alone: the edges are idle
//! until the `202`): the table gives end-to-end URLs/s against it and against the targets of
//! issue 15 (≥ 250,000 URLs/s end to end, at least 100,000; accept ≥ 1,000,000 URLs/s). Each
//! `--edges` value is a cluster size; with several, a table shows how the rate scales with the
//! edge count. The peak resident memory of the `edgepurge dev` process (control and every edge
//! share it) is read from `/proc/PID/status` (`VmHWM`) when the batch is done.
//!
//! `make bench-million` (URLS=1000000 MILLION_EDGES="4 32" RUNS=3) or
//! `million --binary target/release/edgepurge --urls 1000000 --edges 4 --edges 32 --runs 3 --out FILE`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use edgepurge_bench::dev_cluster::{start_dev, wait_connected, Api};
use edgepurge_bench::edge_proc::peak_rss_bytes;
use edgepurge_bench::stats::{ratio, write_report, Summary};
use serde_json::{json, Value};

/// Issue 15's target, end to end.
const TARGET_URLS_PER_SEC: f64 = 250_000.0;
/// What issue 15 requires at the least, end to end.
const MUST_URLS_PER_SEC: f64 = 100_000.0;
/// Issue 15's target for control's accept rate alone.
const TARGET_ACCEPT_PER_SEC: f64 = 1_000_000.0;
/// How long one batch may take before the run is abandoned.
const GIVE_UP: Duration = Duration::from_secs(1800);

/// One bulk request of N URLs to a cluster of E edges, end to end (`make bench-million`).
#[derive(clap::Parser)]
struct Args {
    /// The edgepurge binary (release build).
    #[arg(long, default_value = "target/release/edgepurge")]
    binary: PathBuf,
    /// URLs in the one request.
    #[arg(long, default_value_t = 1_000_000)]
    urls: usize,
    /// Edges of the `edgepurge dev` cluster; repeat for several cluster sizes.
    #[arg(long, default_values_t = [4])]
    edges: Vec<usize>,
    /// Runs, each on a fresh cluster.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Where the JSON report goes.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let args = <Args as clap::Parser>::parse();
    if args.urls == 0 || args.edges.contains(&0) || args.runs == 0 {
        bail!("--urls, --edges and --runs must be at least 1");
    }
    Ok(args)
}

/// What one run measured, in seconds from the start of the request.
struct Run {
    accept: f64,
    edges_applied: Vec<f64>,
    done: f64,
    peak_rss: u64,
}

/// The bulk body: N distinct URLs on the demo host, one per line.
fn body(run: usize, urls: usize) -> Vec<u8> {
    let mut text = String::with_capacity(urls * 40);
    for i in 0..urls {
        let _ = writeln!(text, "http://demo.local/million/r{run}/p{}/{i}.html", i % 100);
    }
    text.into_bytes()
}

fn one_run(args: &Args, edges: usize, run: usize) -> Result<Run> {
    let dev = start_dev(&args.binary, edges)?;
    let mut api = Api::connect(&dev.api, &dev.token)?;
    wait_connected(&mut api, edges)?;
    let body = body(run, args.urls);
    let start = Instant::now();
    let (status, answer) = api.send("POST", "/v1/purges", "text/plain", &body)?;
    let accept = start.elapsed().as_secs_f64();
    if status != 202 {
        bail!("the bulk purge was refused: {status} {answer}");
    }
    let id = answer["id"].as_u64().context("no id in the 202")?;
    let mut edges_applied: Vec<Option<f64>> = Vec::new();
    loop {
        let (_, progress) = api.call("GET", &format!("/v1/purges/{id}"), "")?;
        let now = start.elapsed().as_secs_f64();
        let edges = progress["edges"].as_array().cloned().unwrap_or_default();
        edges_applied.resize(edges.len(), None);
        for (slot, edge) in edges_applied.iter_mut().zip(&edges) {
            if slot.is_none() && edge["total"].as_u64().is_some_and(|t| edge["applied"].as_u64() == Some(t)) {
                *slot = Some(now);
            }
        }
        match progress["state"].as_str() {
            Some("done") => {
                let edges_applied = edges_applied.into_iter().map(|t| t.unwrap_or(now)).collect();
                let peak_rss = peak_rss_bytes(dev.pid())?;
                return Ok(Run { accept, edges_applied, done: now, peak_rss });
            }
            Some("partially-failed") => bail!("batch {id} partially failed: {progress}"),
            _ => {}
        }
        if start.elapsed() > GIVE_UP {
            bail!("batch {id} not done after {} s: {progress}", GIVE_UP.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn summary(samples: &[f64]) -> Summary {
    Summary::of(samples).expect("at least one run")
}

/// The runs of one cluster size, with their summaries.
struct Size {
    edges: usize,
    runs: Vec<Run>,
    accept: Summary,
    e2e: Summary,
    done: Summary,
    peak_rss_mib: Summary,
}

fn measure(args: &Args, edges: usize) -> Result<Size> {
    let n = args.urls as f64;
    println!(
        "\n{} URLs in one text/plain request to {edges} edges (`edgepurge dev`, release), {} runs\n",
        args.urls, args.runs
    );
    println!("| run | accept s | accept URLs/s | first edge applied s | all applied (done) s | URLs/s end to end | peak RSS MiB |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let r = one_run(args, edges, run)?;
        let first = r.edges_applied.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "| {run} | {:.2} | {:.0} | {first:.2} | {:.2} | {:.0} | {:.0} |",
            r.accept,
            n / r.accept,
            r.done,
            n / r.done,
            r.peak_rss as f64 / 1048576.0
        );
        runs.push(r);
    }
    let accept = summary(&runs.iter().map(|r| n / r.accept).collect::<Vec<_>>());
    let e2e = summary(&runs.iter().map(|r| n / r.done).collect::<Vec<_>>());
    let done = summary(&runs.iter().map(|r| r.done).collect::<Vec<_>>());
    let peak_rss_mib = summary(&runs.iter().map(|r| r.peak_rss as f64 / 1048576.0).collect::<Vec<_>>());
    println!();
    println!("| measure ({edges} edges) | median (min–max) |");
    println!("|---|---:|");
    println!("| accept URLs/s (baseline: control alone) | {} |", accept.cell(0));
    println!("| end-to-end URLs/s | {} |", e2e.cell(0));
    println!("| all applied, s | {} |", done.cell(2));
    println!("| end to end / accept | {:.3} |", ratio(e2e.median, accept.median));
    println!("| peak RSS of the process (control + {edges} edges), MiB | {} |", peak_rss_mib.cell(0));
    let verdict = |met: bool| if met { "MET" } else { "MISSED" };
    println!(
        "\ntarget ≥ {TARGET_URLS_PER_SEC:.0} URLs/s end to end: {} (must ≥ {MUST_URLS_PER_SEC:.0}: {}); median {:.0} URLs/s = {:.3}× the target",
        verdict(e2e.median >= TARGET_URLS_PER_SEC),
        verdict(e2e.median >= MUST_URLS_PER_SEC),
        e2e.median,
        e2e.median / TARGET_URLS_PER_SEC
    );
    println!(
        "target accept ≥ {TARGET_ACCEPT_PER_SEC:.0} URLs/s: {} (median {:.0} = {:.3}×)",
        verdict(accept.median >= TARGET_ACCEPT_PER_SEC),
        accept.median,
        accept.median / TARGET_ACCEPT_PER_SEC
    );
    Ok(Size { edges, runs, accept, e2e, done, peak_rss_mib })
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let n = args.urls as f64;
    let mut sizes = Vec::new();
    for &edges in &args.edges {
        sizes.push(measure(&args, edges)?);
    }
    if sizes.len() > 1 {
        let base = &sizes[0];
        println!(
            "\n| edges | end-to-end URLs/s (median) | vs {} edges | edge-tasks applied/s (URLs × edges / done) |",
            base.edges
        );
        println!("|---:|---:|---:|---:|");
        for s in &sizes {
            println!(
                "| {} | {:.0} | {:.2} | {:.0} |",
                s.edges,
                s.e2e.median,
                ratio(s.e2e.median, base.e2e.median),
                n * s.edges as f64 / s.done.median
            );
        }
    }
    if let Some(out) = &args.out {
        let results: Vec<Value> = sizes
            .iter()
            .map(|s| {
                let runs: Vec<Value> = s
                    .runs
                    .iter()
                    .map(|r| {
                        json!({"accept_s": r.accept, "edges_applied_s": r.edges_applied, "done_s": r.done,
                               "accept_urls_per_s": n / r.accept, "end_to_end_urls_per_s": n / r.done,
                               "peak_rss_bytes": r.peak_rss})
                    })
                    .collect();
                json!({
                    "edges": s.edges,
                    "runs": runs,
                    "accept_urls_per_s": s.accept,
                    "end_to_end_urls_per_s": s.e2e,
                    "done_s": s.done,
                    "peak_rss_mib": s.peak_rss_mib,
                    "end_to_end_over_accept": ratio(s.e2e.median, s.accept.median),
                    "target_urls_per_s": TARGET_URLS_PER_SEC,
                    "must_urls_per_s": MUST_URLS_PER_SEC,
                    "target_met": s.e2e.median >= TARGET_URLS_PER_SEC,
                    "must_met": s.e2e.median >= MUST_URLS_PER_SEC,
                    "target_accept_per_s": TARGET_ACCEPT_PER_SEC,
                })
            })
            .collect();
        let parameters = json!({"urls": args.urls, "edges": args.edges, "runs": args.runs, "binary": args.binary});
        write_report(out, "million", parameters, json!({ "sizes": results }))?;
    }
    Ok(())
}
