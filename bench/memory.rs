//! Memory per cached entry: resident bytes the edge needs per object beyond the object's body,
//! next to Varnish (`-s malloc`) holding the same objects.
//!
//! For each size N and repetition: start a fresh edge (release binary) in front of an in-process
//! origin, warm it with 2,000 other objects (so the allocator, the tokio workers and the
//! connections' buffers are set up), read `VmRSS` from `/proc/PID/status`, fill N objects of
//! `--body-bytes` through real HTTP ([`fill`]), wait until `edgepurge_cache_entries` shows them
//! and two more seconds, read `VmRSS` again: per entry = (RSS after − RSS before) / N − body.
//! The same with `varnishd` (RSS of the manager and its cache child). Prints markdown tables and
//! writes JSON (`bench/results/memory.json`). Target: ≤ 200 B per entry at 10⁶ entries.
//!
//! `make bench-memory` or `memory --binary target/release/edgepurge --sizes 100000 1000000
//! --repeats 3 --out bench/results/memory.json` (`--help` lists every flag).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use edgepurge_bench::edge_proc::{mem_available_bytes, EdgeProc};
use edgepurge_bench::fill::{fill, HttpConn, Layout, Origin};
use edgepurge_bench::stats::{cell, median, ratio, ratio_cell, write_report, Summary};
use edgepurge_bench::varnish::{ensure_tools, Varnish};
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;
/// Objects filled before the first RSS reading.
const WARM: u64 = 2_000;
/// The target: resident bytes per entry beyond the body.
const TARGET: f64 = 200.0;
/// Resident bytes per cached entry beyond the body, edge and Varnish (`make bench-memory`).
#[derive(clap::Parser)]
struct Args {
    /// The edgepurge binary (release build).
    #[arg(long, default_value = "target/release/edgepurge")]
    binary: PathBuf,
    /// Entry counts to measure (e.g. `--sizes 100000 1000000`).
    #[arg(long, num_args = 1.., default_values_t = [100_000, 1_000_000])]
    sizes: Vec<u64>,
    /// Runs per size.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Body size of every object.
    #[arg(long, default_value_t = 32)]
    body_bytes: usize,
    /// Keep-alive connections of the filler.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds to let the process settle before reading its RSS.
    #[arg(long = "settle-secs", default_value = "2", value_parser = secs)]
    settle: Duration,
    /// Measure the edge only.
    #[arg(long = "no-varnish", action = clap::ArgAction::SetFalse)]
    varnish: bool,
    /// Where the JSON report goes.
    #[arg(long, default_value = "bench/results/memory.json")]
    out: PathBuf,
}

fn secs(s: &str) -> Result<Duration, String> {
    s.parse().map(Duration::from_secs).map_err(|_| format!("`{s}` is not a number of seconds"))
}

fn parse_args() -> Result<Args> {
    let args = <Args as clap::Parser>::parse();
    if args.sizes.contains(&0) || args.repeats == 0 {
        bail!("--sizes and --repeats must be positive");
    }
    Ok(args)
}

/// One measurement: RSS before and after the fill, entries held, weighed bytes (edge only).
#[derive(serde::Serialize)]
struct Sample {
    rss_before: u64,
    rss_after: u64,
    entries: u64,
    weighed_bytes: Option<u64>,
    fill_seconds: f64,
    /// (after − before) / N − body.
    per_entry: f64,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn per_entry(before: u64, after: u64, n: u64, body: usize) -> f64 {
    (after as f64 - before as f64) / n as f64 - body as f64
}

fn measure_edge(args: &Args, n: u64) -> Result<Sample> {
    let rt = runtime()?;
    let origin = Origin::start(&rt, args.body_bytes)?;
    let edge = EdgeProc::start(&args.binary, origin.addr, (n + WARM) * 4096 / MIB + 256)?;
    fill(&rt, edge.proxy, n..n + WARM, args.connections)?;
    std::thread::sleep(args.settle);
    let rss_before = edge.rss()?;
    let report = fill(&rt, edge.proxy, 0..n, args.connections)?;
    let entries = edge.wait_entries(n + WARM, Duration::from_secs(60))?;
    std::thread::sleep(args.settle);
    let rss_after = edge.rss()?;
    let weighed = edge.metric("edgepurge_cache_bytes")? as u64;
    if entries != n + WARM || report.errors > 0 {
        bail!("the edge holds {entries} entries for {} filled ({} errors)", n + WARM, report.errors);
    }
    let mut proxy = HttpConn::connect(edge.proxy)?;
    let reply = proxy.get_object(n / 2)?;
    if !edgepurge_bench::edge_proc::is_edge_hit(reply.header("cache-status")) {
        bail!("object {} is not a hit after the fill", Layout::url(n / 2));
    }
    Ok(Sample {
        rss_before,
        rss_after,
        entries,
        weighed_bytes: Some(weighed),
        fill_seconds: report.seconds,
        per_entry: per_entry(rss_before, rss_after, n, args.body_bytes),
    })
}

fn measure_varnish(args: &Args, n: u64) -> Result<Sample> {
    let rt = runtime()?;
    let origin = Origin::start(&rt, args.body_bytes)?;
    let varnish = Varnish::start(origin.addr, (n + WARM) * 4096 / MIB + 256, &[])?;
    fill(&rt, varnish.addr, n..n + WARM, args.connections)?;
    std::thread::sleep(args.settle);
    let rss_before = varnish.rss()?;
    let report = fill(&rt, varnish.addr, 0..n, args.connections)?;
    std::thread::sleep(args.settle);
    let objects = varnish.wait_objects(n + WARM, Duration::from_secs(20))?;
    let rss_after = varnish.rss()?;
    if objects < n + WARM {
        eprintln!("warning: varnishstat shows {objects} objects for {} filled (no evictions)", n + WARM);
    }
    if report.errors > 0 {
        bail!("Varnish holds {objects} objects for {} filled ({} errors)", n + WARM, report.errors);
    }
    Ok(Sample {
        rss_before,
        rss_after,
        entries: objects,
        weighed_bytes: None,
        fill_seconds: report.seconds,
        per_entry: per_entry(rss_before, rss_after, n, args.body_bytes),
    })
}

fn fits(n: u64, per_entry: f64, what: &str) -> bool {
    let need = (n as f64 * per_entry * 1.25) as u64 + 512 * MIB;
    let available = mem_available_bytes();
    if need > available {
        eprintln!("skipping {what} at {n} entries: needs ~{} MiB, {} MiB available", need / MIB, available / MIB);
    }
    need <= available
}

fn main() -> Result<()> {
    let args = parse_args()?;
    if args.varnish {
        ensure_tools(&[("varnishd", "varnish"), ("varnishadm", "varnish"), ("varnishstat", "varnish")])?;
    }
    let mut rows: Vec<(u64, Vec<Sample>, Vec<Sample>)> = Vec::new();
    let (mut edge_est, mut varnish_est) = (3000.0, 2000.0);
    for &n in &args.sizes {
        let (mut edge, mut varnish) = (Vec::new(), Vec::new());
        for r in 0..args.repeats {
            if fits(n, edge_est, "the edge") {
                let s = measure_edge(&args, n)?;
                eprintln!(
                    "edge {n} #{r}: {:.0} B/entry beyond the body (filled in {:.1} s)",
                    s.per_entry, s.fill_seconds
                );
                edge_est = (s.per_entry + args.body_bytes as f64).max(300.0);
                edge.push(s);
            }
            if args.varnish && fits(n, varnish_est, "Varnish") {
                let s = measure_varnish(&args, n)?;
                eprintln!("varnish {n} #{r}: {:.0} B/object beyond the body", s.per_entry);
                varnish_est = (s.per_entry + args.body_bytes as f64).max(300.0);
                varnish.push(s);
            }
        }
        rows.push((n, edge, varnish));
    }
    let key_bytes = |n: u64| (0..n).map(|i| Layout::url(i).len() as f64).sum::<f64>() / n as f64;
    let tag_bytes = Layout::tag(0).len();
    println!("\n### Resident bytes per entry beyond the body ({} B bodies), median (min–max)\n", args.body_bytes);
    println!("| entries | key (URL) B | edge | edge weighed | Varnish | edge / Varnish | target ≤ {TARGET:.0} B |");
    println!("|---:|---:|---:|---:|---:|---:|---|");
    let mut results = Vec::new();
    for (n, edge, varnish) in &rows {
        let e: Vec<f64> = edge.iter().map(|s| s.per_entry).collect();
        let w: Vec<f64> = edge
            .iter()
            .filter_map(|s| Some(s.weighed_bytes? as f64 / s.entries as f64 - args.body_bytes as f64))
            .collect();
        let v: Vec<f64> = varnish.iter().map(|s| s.per_entry).collect();
        let r = ratio(median(&e), median(&v));
        let verdict = if e.is_empty() {
            "—"
        } else if median(&e) <= TARGET {
            "MET"
        } else {
            "MISSED"
        };
        let key = key_bytes(*n);
        println!(
            "| {n} | {key:.1} | {} | {} | {} | {} | {verdict} |",
            cell(&e, 0),
            cell(&w, 0),
            cell(&v, 0),
            ratio_cell(r, 2)
        );
        results.push(json!({
            "entries": n, "key_bytes_mean": key, "tag_bytes": tag_bytes,
            "edge_per_entry": Summary::of(&e), "edge_weighed_per_entry": Summary::of(&w),
            "varnish_per_object": Summary::of(&v), "ratio_edge_varnish": r, "verdict": verdict,
            "edge_samples": edge, "varnish_samples": varnish,
        }));
    }
    println!(
        "\n\"Beyond the body\" includes the key (the normalised URL, mean length above), one tag of {tag_bytes} B, \
         the stored response headers (content-type, cache-control, surrogate-key, content-length, date) and every \
         structure of the store. Edge weighed = what the store charges against `capacity-mib` per entry."
    );
    let parameters = json!({
        "sizes": args.sizes, "repeats": args.repeats, "body_bytes": args.body_bytes, "connections": args.connections,
        "warm_objects": WARM, "settle_secs": args.settle.as_secs(), "varnish": args.varnish,
        "varnish_storage": "-s malloc (sized 4 KiB per object), default parameters", "target_bytes": TARGET,
    });
    write_report(&args.out, "memory", parameters, Value::Array(results))
}
