//! Propagation latency: how long from the API accepting a purge until every edge has applied it.
//!
//! Starts `edgepurge dev --edges N` (control, N edges over mutual TLS on loopback, a demo
//! origin) for each N given, submits single-URL purges one after another, and for each one
//! measures from the moment the `202` arrives to the first status read that says `done` (the
//! status is read in a tight loop over one keep-alive connection, so the figure includes at most
//! one status round trip, ~0.2 ms here). Each edge count runs RUNS times, interleaved (1, 8, 32,
//! 1, 8, 32, …), each time on a fresh cluster. Prints p50 / p99 / max per run, the median and
//! range over runs, the ratio of each edge count's p50 and p99 to the smallest edge count's (the
//! baseline, measured in the same run) and the verdict for the target (p99 < 50 ms at the largest
//! edge count), and writes JSON.
//!
//! `make bench-propagation` (EDGES="1 8 32", PURGES=1000, RUNS=3) or
//! `propagation --binary target/release/edgepurge --edges 1 --edges 8 --edges 32 --purges 1000 --runs 3 --out FILE`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use edgepurge_bench::dev_cluster::{start_dev, wait_connected, Api};
use edgepurge_bench::stats::{ratio, write_report, Summary};
use serde_json::json;

/// API accepted → applied on every edge over `edgepurge dev` (`make bench-propagation`).
#[derive(clap::Parser)]
struct Args {
    /// The edgepurge binary (release build).
    #[arg(long, default_value = "target/release/edgepurge")]
    binary: PathBuf,
    /// Edge counts, the first one the baseline (repeat the flag: `--edges 1 --edges 8`).
    #[arg(long, default_values_t = [1, 8, 32])]
    edges: Vec<usize>,
    /// Single-URL purges measured per run.
    #[arg(long, default_value_t = 1000)]
    purges: usize,
    /// Runs per edge count, interleaved, each on a fresh cluster.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Where the JSON report goes.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The target for the p99 at the largest edge count.
const TARGET_P99_MS: f64 = 50.0;

fn parse_args() -> Result<Args> {
    let args = <Args as clap::Parser>::parse();
    if args.purges == 0 || args.runs == 0 || args.edges.contains(&0) {
        bail!("--purges, --runs and every --edges must be at least 1");
    }
    Ok(args)
}

/// Submits one purge and returns the time from its `202` to the first `done` status.
fn one_purge(api: &mut Api, n: usize) -> Result<Duration> {
    let body = json!({"urls": [format!("http://demo.local/propagation/{n}")]}).to_string();
    let (status, answer) = api.call("POST", "/v1/purges", &body)?;
    let accepted = Instant::now();
    if status != 202 {
        bail!("purge refused: {status} {answer}");
    }
    let id = answer["id"].as_u64().context("no id in the 202")?;
    loop {
        let (_, progress) = api.call("GET", &format!("/v1/purges/{id}"), "")?;
        if progress["state"] == "done" {
            return Ok(accepted.elapsed());
        }
        if accepted.elapsed() > Duration::from_secs(60) {
            bail!("batch {id} not done after 60 s: {progress}");
        }
    }
}

/// One cluster's 1,000 (PURGES) purges: latency in ms per purge.
fn one_run(args: &Args, edges: usize) -> Result<Summary> {
    let dev = start_dev(&args.binary, edges)?;
    let mut api = Api::connect(&dev.api, &dev.token)?;
    wait_connected(&mut api, edges)?;
    for n in 0..20 {
        one_purge(&mut api, usize::MAX - n)?;
    }
    let mut times = Vec::with_capacity(args.purges);
    for n in 0..args.purges {
        times.push(one_purge(&mut api, n)?.as_secs_f64() * 1000.0);
    }
    Summary::of(&times).context("no purges were measured")
}

fn main() -> Result<()> {
    let args = parse_args()?;
    // runs[e] = one Summary per run for args.edges[e]; the edge counts are interleaved.
    let mut runs: Vec<Vec<Summary>> = vec![Vec::new(); args.edges.len()];
    println!("| edges | run | purges | p50 ms | p99 ms | max ms | mean ms |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for run in 1..=args.runs {
        for (e, &edges) in args.edges.iter().enumerate() {
            let s = one_run(&args, edges)?;
            println!(
                "| {edges} | {run} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                args.purges, s.median, s.p99, s.max, s.mean
            );
            runs[e].push(s);
        }
    }
    let over_runs = |e: usize, f: fn(&Summary) -> f64| {
        Summary::of(&runs[e].iter().map(f).collect::<Vec<_>>()).expect("at least one run")
    };
    println!();
    println!("| edges | p50 ms, median of runs (min–max) | p99 ms (min–max) | max ms (min–max) | p50 / baseline | p99 / baseline |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let (base_p50, base_p99) = (over_runs(0, |s| s.median).median, over_runs(0, |s| s.p99).median);
    let mut results = Vec::new();
    for (e, &edges) in args.edges.iter().enumerate() {
        let (p50, p99, max) = (over_runs(e, |s| s.median), over_runs(e, |s| s.p99), over_runs(e, |s| s.max));
        let (r50, r99) = (ratio(p50.median, base_p50), ratio(p99.median, base_p99));
        println!("| {edges} | {} | {} | {} | {r50:.2} | {r99:.2} |", p50.cell(2), p99.cell(2), max.cell(2));
        results.push(json!({"edges": edges, "purges": args.purges, "runs": runs[e],
            "p50_ms": p50, "p99_ms": p99, "max_ms": max, "p50_over_baseline": r50, "p99_over_baseline": r99}));
    }
    let last = args.edges.len() - 1;
    let p99 = over_runs(last, |s| s.p99);
    let met = p99.max < TARGET_P99_MS;
    println!(
        "\nbaseline: {} edge(s), measured in the same run\ntarget: p99 < {TARGET_P99_MS} ms at {} edges: {} (p99 {} ms over {} runs)",
        args.edges[0],
        args.edges[last],
        if met { "MET" } else { "MISSED" },
        p99.cell(2),
        args.runs
    );
    if let Some(out) = &args.out {
        let parameters = json!({"edges": args.edges, "purges": args.purges, "runs": args.runs, "binary": args.binary});
        let results = json!({"per_edges": results, "baseline_edges": args.edges[0],
            "target_p99_ms": TARGET_P99_MS, "target_edges": args.edges[last], "target_met": met});
        write_report(out, "propagation", parameters, results)?;
    }
    Ok(())
}
