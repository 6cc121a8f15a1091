//! Purge cost against cache size: for each size N, an edge (release binary) is filled with N
//! small objects through real HTTP from an in-process origin, then purges of every kind are
//! sent to its admin listener (`POST /purge`, which answers once the purge is applied) and
//! timed from sending the request to the answer; hit throughput over a hot set is measured with
//! `wrk` without and with a background stream of purges; and the prefix purges are repeated as
//! Varnish bans (same objects, `ban obj.http.x-url ~ ^prefix`) timed until the ban lurker has
//! completed them. Prints markdown tables and writes JSON (`bench/results/purge-cost.json`).
//!
//! Layout ([`Layout`]): object `i` at `http://h{i%10}.bench/d{(i/10)%100}/o{i}`, tag
//! `t{host}-{dir}`. Host `h0` holds the 0.1 % targets (prefixes `d00`–`d19`, tags of
//! `d20`–`d39`, single URLs in `d40`–`d49`, background purges in `d50`–`d89`, the hot set in
//! `d90`–`d99`); hosts `h1`,`h3`,… are the 10 % prefixes, `h2`,`h4`,… the host purges.
//!
//! `make bench-purge-cost` or `purge_cost --binary target/release/edgepurge --sizes 10000 100000
//! --repeats 20 --out bench/results/purge-cost.json` (`--help` lists every flag).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use edgepurge_bench::edge_proc::{is_edge_hit, mem_available_bytes, EdgeProc};
use edgepurge_bench::fill::{fill, FillReport, HttpConn, Layout, Origin};
use edgepurge_bench::stats::{cell, median, ratio, write_report, Summary};
use edgepurge_bench::varnish::{ensure_tools, Varnish};
use edgepurge_bench::wrk;
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;
/// Purge cost against cache size, edge and Varnish bans (`make bench-purge-cost`).
#[derive(clap::Parser)]
struct Args {
    /// The edgepurge binary (release build).
    #[arg(long, default_value = "target/release/edgepurge")]
    binary: PathBuf,
    /// Entry counts to measure, multiples of 1,000, at least 10,000 (e.g. `--sizes 10000 100000`).
    #[arg(long, num_args = 1.., default_values_t = [10_000, 100_000])]
    sizes: Vec<u64>,
    /// Repetitions of each purge kind (1 to 100).
    #[arg(long, default_value_t = 20)]
    repeats: usize,
    /// Keep-alive connections of the filler.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Body size of every object.
    #[arg(long, default_value_t = 32)]
    body_bytes: usize,
    /// Seconds of one wrk run over the hot set.
    #[arg(long, default_value_t = 3)]
    hit_secs: u64,
    /// wrk runs without and with background purges, each.
    #[arg(long, default_value_t = 3)]
    hit_rounds: usize,
    /// Background purges per second during the hit runs.
    #[arg(long, default_value_t = 100.0)]
    purge_rate: f64,
    /// Largest size measured in Varnish.
    #[arg(long, default_value_t = 10_000_000)]
    varnish_max: u64,
    /// Measure the edge only.
    #[arg(long = "no-varnish", action = clap::ArgAction::SetFalse)]
    varnish: bool,
    /// Where the JSON report goes.
    #[arg(long, default_value = "bench/results/purge-cost.json")]
    out: PathBuf,
}

fn parse_args() -> Result<Args> {
    let args = <Args as clap::Parser>::parse();
    if let Some(bad) = args.sizes.iter().find(|&&n| n < 10_000 || n % 1000 != 0) {
        bail!("size {bad}: sizes must be multiples of 1,000, at least 10,000");
    }
    if args.repeats == 0 || args.repeats > 100 {
        bail!("--repeats must be 1 to 100");
    }
    Ok(args)
}

/// The purge kinds measured, in the order of a round (`Everything` runs last, on its own).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Url,
    Prefix01,
    Tag,
    Prefix10,
    Host,
    Everything,
}

const ROUND: [Kind; 5] = [Kind::Url, Kind::Prefix01, Kind::Tag, Kind::Prefix10, Kind::Host];
const ALL: [Kind; 6] = [Kind::Url, Kind::Prefix01, Kind::Prefix10, Kind::Tag, Kind::Host, Kind::Everything];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Url => "url",
            Kind::Prefix01 => "prefix 0.1 %",
            Kind::Tag => "tag 0.1 %",
            Kind::Prefix10 => "prefix 10 %",
            Kind::Host => "host 10 %",
            Kind::Everything => "everything",
        }
    }

    /// Distinct targets before the repetitions cycle (later ones match objects already purged;
    /// the edge's cost does not depend on what a scoped purge matches).
    fn targets(self) -> usize {
        match self {
            Kind::Url => 100,
            Kind::Prefix01 | Kind::Tag => 20,
            Kind::Prefix10 => 5,
            Kind::Host => 4,
            Kind::Everything => 1,
        }
    }

    /// The task JSON of repetition `r` and an object it must purge.
    fn task(self, r: usize, id: u64) -> (String, u64) {
        let r = r as u64;
        let (kind, target, sample) = match self {
            Kind::Url => {
                let i = Layout::index(0, 40 + r % 10, r / 10);
                ("url", Layout::url(i), i)
            }
            Kind::Prefix01 => ("prefix", Layout::dir_prefix(0, r % 20), Layout::index(0, r % 20, 0)),
            Kind::Tag => ("tag", Layout::tag_of(0, 20 + r % 20), Layout::index(0, 20 + r % 20, 0)),
            Kind::Prefix10 => {
                let h = 1 + 2 * (r % 5);
                ("prefix", Layout::host_prefix(h), Layout::index(h, 0, 0))
            }
            Kind::Host => {
                let h = 2 + 2 * (r % 4);
                ("host", Layout::host_name(h), Layout::index(h, 0, 0))
            }
            Kind::Everything => ("everything", String::new(), hot_set(10_000, 1)[0]),
        };
        (json!({"id": id, "kind": kind, "target": target}).to_string(), sample)
    }
}

/// Up to 1,000 objects of `h0` `d90`–`d99` (no measured purge touches them but `everything`).
fn hot_set(n: u64, max: usize) -> Vec<u64> {
    (0..n / 1000).flat_map(|m| (90..100).map(move |d| Layout::index(0, d, m))).take(max).collect()
}

/// A background purge `k` (hit throughput test): URLs, prefixes, tags of `h0` `d50`–`d89`, hosts.
fn background_task(k: u64, n: u64) -> String {
    let dir = 50 + (k / 4) % 40;
    let (kind, target) = match k % 4 {
        0 => ("url", Layout::url(Layout::index(0, dir, (k / 160) % (n / 1000)))),
        1 => ("prefix", Layout::dir_prefix(0, dir)),
        2 => ("tag", Layout::tag_of(0, dir)),
        _ => ("host", Layout::host_name(1 + k % 9)),
    };
    json!({"id": 1_000_000 + k, "kind": kind, "target": target}).to_string()
}

/// Sends one purge and returns the time until its answer.
fn purge(admin: &mut HttpConn, body: &str) -> Result<Duration> {
    let start = Instant::now();
    let reply = admin.request("POST", "/purge", "admin", body)?;
    let elapsed = start.elapsed();
    if reply.status != 200 {
        bail!("POST /purge {body} answered {}: {}", reply.status, reply.text());
    }
    Ok(elapsed)
}

fn is_hit(proxy: &mut HttpConn, i: u64) -> Result<bool> {
    let reply = proxy.get_object(i)?;
    Ok(reply.status == 200 && is_edge_hit(reply.header("cache-status")))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

struct EdgeRun {
    json: Value,
    fill: FillReport,
    rss_per_entry: f64,
    purges: Vec<(Kind, Vec<f64>)>,
    quiet: Vec<f64>,
    busy: Vec<f64>,
    bg_rate: f64,
    bg_latency: Vec<f64>,
}

fn run_edge(args: &Args, n: u64) -> Result<EdgeRun> {
    let rt = runtime()?;
    let origin = Origin::start(&rt, args.body_bytes)?;
    let capacity_mib = n * 4096 / MIB + 256;
    let edge = EdgeProc::start(&args.binary, origin.addr, capacity_mib)?;
    let rss_before = edge.rss()?;
    let fill = fill(&rt, edge.proxy, 0..n, args.connections)?;
    let entries = edge.wait_entries(n, Duration::from_secs(30))?;
    let rss_after = edge.rss()?;
    let rss_per_entry = rss_after.saturating_sub(rss_before) as f64 / n as f64;
    let weighed = edge.metric("edgepurge_cache_bytes")?;
    let evictions = edge.metric("edgepurge_cache_evictions_total")?;
    eprintln!(
        "edge {n}: filled in {:.1} s ({:.0} req/s, {} errors), {entries} entries, RSS {} MiB, {evictions} evictions",
        fill.seconds,
        fill.rate(),
        fill.errors,
        rss_after / MIB
    );
    if entries != n || evictions > 0.0 {
        bail!(
            "the edge holds {entries} entries for {n} filled ({evictions} evicted); see {}",
            edge.log_path().display()
        );
    }
    let mut proxy = HttpConn::connect(edge.proxy)?;
    let sample: Vec<u64> = (0..200).map(|k| (k * 7_919 + 13) % n).collect();
    let misses = sample.iter().map(|&i| is_hit(&mut proxy, i)).filter(|h| !matches!(h, Ok(true))).count();
    if misses > 0 {
        bail!("{misses} of {} sampled objects were not hits after the fill", sample.len());
    }

    // Purges: rounds of every kind, each timed; the sample object is a hit before, a miss after.
    let mut admin = HttpConn::connect(edge.admin)?;
    let mut purges: Vec<(Kind, Vec<f64>)> = ALL.iter().map(|&k| (k, Vec::new())).collect();
    let mut id = 1;
    let mut one = |kind: Kind, r: usize, admin: &mut HttpConn, proxy: &mut HttpConn| -> Result<()> {
        let (body, sample) = kind.task(r, id);
        id += 1;
        if !is_hit(proxy, sample)? {
            bail!("{}: object {} is not cached before the purge", kind.label(), Layout::url(sample));
        }
        let took = purge(admin, &body)?;
        if is_hit(proxy, sample)? {
            bail!("{}: object {} is still a hit after {body}", kind.label(), Layout::url(sample));
        }
        purges.iter_mut().find(|(k, _)| *k == kind).expect("kind").1.push(took.as_secs_f64() * 1e6);
        Ok(())
    };
    for r in 0..args.repeats {
        for kind in ROUND {
            one(kind, r, &mut admin, &mut proxy)?;
        }
    }

    // Hit throughput over the hot set, without and with background purges, alternating.
    let hot = hot_set(n, 1000);
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("hot.lua");
    wrk::write_script(&script, &Layout::host_name(0), &hot.iter().map(|&i| Layout::path(i)).collect::<Vec<_>>())?;
    wrk::run(edge.proxy, &script, 2, 64, 1)?;
    let (mut quiet, mut busy, mut bg_sent, mut bg_secs) = (Vec::new(), Vec::new(), 0u64, 0.0);
    let mut bg_latency = Vec::new();
    for _ in 0..args.hit_rounds {
        quiet.push(wrk::run(edge.proxy, &script, 2, 64, args.hit_secs)?.rps);
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, admin_addr, rate) = (stop.clone(), edge.admin, args.purge_rate);
        let background = std::thread::spawn(move || -> Result<(u64, f64, Vec<f64>)> {
            let mut conn = HttpConn::connect(admin_addr)?;
            let (start, mut k, mut latency) = (Instant::now(), 0u64, Vec::new());
            while !stop2.load(Ordering::Relaxed) {
                latency.push(purge(&mut conn, &background_task(k, n))?.as_secs_f64() * 1e6);
                k += 1;
                let due = start + Duration::from_secs_f64(k as f64 / rate);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            Ok((k, start.elapsed().as_secs_f64(), latency))
        });
        let run = wrk::run(edge.proxy, &script, 2, 64, args.hit_secs);
        stop.store(true, Ordering::Relaxed);
        let (sent, secs, latency) = background.join().map_err(|_| anyhow::anyhow!("purge thread panicked"))??;
        busy.push(run?.rps);
        (bg_sent, bg_secs) = (bg_sent + sent, bg_secs + secs);
        bg_latency.extend(latency);
    }
    for &i in &hot {
        if !is_hit(&mut proxy, i)? {
            bail!("hot object {} is not a hit after the background purges", Layout::url(i));
        }
    }

    for r in 0..args.repeats {
        one(Kind::Everything, r, &mut admin, &mut proxy)?;
    }
    let bg_rate = bg_sent as f64 / bg_secs.max(1e-9);
    let json = json!({
        "entries": n, "fill": fill, "fill_rate": fill.rate(), "entries_held": entries, "weighed_bytes": weighed,
        "rss_before": rss_before, "rss_after": rss_after, "rss_per_entry": rss_per_entry,
        "purge_us": purges.iter().map(|(k, s)| json!({"kind": k.label(), "distinct_targets": k.targets(), "summary": Summary::of(s), "samples": s})).collect::<Vec<_>>(),
        "hit_rps_quiet": quiet, "hit_rps_purging": busy, "hot_set": hot.len(),
        "background_purges_per_sec": bg_rate, "background_purge_us": Summary::of(&bg_latency),
    });
    Ok(EdgeRun { json, fill, rss_per_entry, purges, quiet, busy, bg_rate, bg_latency })
}

struct VarnishRun {
    json: Value,
    /// Per kind (prefix 0.1 %, prefix 10 %): CLI answer ms, lurker-completed ms.
    bans: Vec<(Kind, Vec<f64>, Vec<f64>)>,
    rss_per_object: f64,
}

const VARNISH_PARAMS: [(&str, &str); 1] = [("ban_lurker_age", "0")];

fn run_varnish(args: &Args, n: u64) -> Result<VarnishRun> {
    let rt = runtime()?;
    let origin = Origin::start(&rt, args.body_bytes)?;
    let varnish = Varnish::start(origin.addr, n * 2048 / MIB + 256, &VARNISH_PARAMS)?;
    let rss_before = varnish.rss()?;
    let fill = fill(&rt, varnish.addr, 0..n, args.connections)?;
    let objects = varnish.wait_objects(n, Duration::from_secs(20))?;
    let rss_per_object = varnish.rss()?.saturating_sub(rss_before) as f64 / n as f64;
    eprintln!("varnish {n}: filled in {:.1} s ({:.0} req/s), {objects} objects", fill.seconds, fill.rate());
    if objects < n {
        eprintln!("warning: varnishstat shows {objects} objects for {n} filled (no evictions)");
    }
    let mut bans: Vec<(Kind, Vec<f64>, Vec<f64>)> =
        [Kind::Prefix01, Kind::Prefix10].iter().map(|&k| (k, Vec::new(), Vec::new())).collect();
    let mut killed = Vec::new();
    for r in 0..args.repeats {
        for (kind, cli, done) in bans.iter_mut() {
            let prefix = match kind {
                Kind::Prefix01 => Layout::dir_prefix(0, r as u64 % 20),
                _ => Layout::host_prefix(1 + 2 * (r as u64 % 5)),
            };
            let [killed_before] = varnish.stats(&["MAIN.bans_lurker_obj_killed"])?[..] else { bail!("varnishstat") };
            let regex = format!("^{prefix}");
            let start = Instant::now();
            varnish.adm(&["ban", "obj.http.x-url", "~", &regex])?;
            cli.push(start.elapsed().as_secs_f64() * 1e3);
            while varnish.ban_pending(&regex)? {
                if start.elapsed() > Duration::from_secs(1800) {
                    bail!("the ban lurker did not complete `{regex}` in 30 minutes");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            done.push(start.elapsed().as_secs_f64() * 1e3);
            let [after] = varnish.stats(&["MAIN.bans_lurker_obj_killed"])?[..] else { bail!("varnishstat") };
            killed.push(json!({"kind": kind.label(), "repetition": r, "killed": after - killed_before}));
        }
    }
    let json = json!({
        "entries": n, "fill": fill, "objects": objects, "rss_per_object": rss_per_object,
        "bans": bans.iter().map(|(k, cli, done)| json!({"kind": k.label(), "cli_ms": Summary::of(cli),
            "lurker_done_ms": Summary::of(done), "cli_samples": cli, "done_samples": done})).collect::<Vec<_>>(),
        "killed": killed,
    });
    Ok(VarnishRun { json, bans, rss_per_object })
}

/// Whether `n` entries at `per_entry` bytes fit in the available memory (with a 25 % margin).
fn fits(n: u64, per_entry: f64, what: &str) -> bool {
    let need = (n as f64 * per_entry * 1.25) as u64 + 512 * MIB;
    let available = mem_available_bytes();
    if need > available {
        eprintln!(
            "skipping {what} at {n} entries: needs ~{} MiB ({per_entry:.0} B/entry measured or assumed), {} MiB available",
            need / MIB,
            available / MIB
        );
    }
    need <= available
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let mut tools = vec![("wrk", "wrk")];
    if args.varnish {
        tools.extend([("varnishd", "varnish"), ("varnishadm", "varnish"), ("varnishstat", "varnish")]);
    }
    ensure_tools(&tools)?;
    let (mut edge_est, mut varnish_est) = (3000.0, 2000.0);
    let mut edges: Vec<EdgeRun> = Vec::new();
    let mut varnishes: Vec<Option<VarnishRun>> = Vec::new();
    for &n in &args.sizes {
        if !fits(n, edge_est, "the edge") {
            continue;
        }
        let edge = run_edge(&args, n)?;
        edge_est = edge.rss_per_entry.max(500.0);
        edges.push(edge);
        let varnish = if args.varnish && n <= args.varnish_max && fits(n, varnish_est, "Varnish") {
            let run = run_varnish(&args, n)?;
            varnish_est = run.rss_per_object.max(300.0);
            Some(run)
        } else {
            None
        };
        varnishes.push(varnish);
    }
    if edges.is_empty() {
        bail!("no size fitted in memory");
    }
    print_tables(&edges, &varnishes);
    let parameters = json!({
        "sizes": args.sizes, "repeats": args.repeats, "connections": args.connections, "body_bytes": args.body_bytes,
        "hit_secs": args.hit_secs, "hit_rounds": args.hit_rounds, "purge_rate": args.purge_rate,
        "wrk": "-t2 -c64", "varnish_max": args.varnish_max, "varnish": args.varnish,
        "varnish_params": VARNISH_PARAMS.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "varnish_defaults": "ban_lurker_sleep=0.010 s, ban_lurker_batch=1000, ban_cutoff=0 (Varnish defaults)",
    });
    let results = json!({
        "edge": edges.iter().map(|e| &e.json).collect::<Vec<_>>(),
        "varnish": varnishes.iter().flatten().map(|v| &v.json).collect::<Vec<_>>(),
    });
    write_report(&args.out, "purge-cost", parameters, results)
}

fn print_tables(edges: &[EdgeRun], varnishes: &[Option<VarnishRun>]) {
    let sizes: Vec<String> = edges.iter().map(|e| e.json["entries"].to_string()).collect();
    println!("\n### Fill\n\n| entries | fill s | fill req/s | edge RSS B/entry | Varnish RSS B/object |");
    println!("|---:|---:|---:|---:|---:|");
    for (e, v) in edges.iter().zip(varnishes) {
        let v = v.as_ref().map_or("—".to_owned(), |v| format!("{:.0}", v.rss_per_object));
        let (secs, rate) = (e.fill.seconds, e.fill.rate());
        println!("| {} | {secs:.1} | {rate:.0} | {:.0} | {v} |", e.json["entries"], e.rss_per_entry);
    }
    let (first, last) = (&edges[0], &edges[edges.len() - 1]);
    println!("\n### Purge: µs from sending `POST /purge` to its answer, median (min–max)\n");
    println!("| kind | {} | ratio {} / {} | target ≤ 2× |", sizes.join(" | "), sizes[sizes.len() - 1], sizes[0]);
    println!("|---|{}---:|---|", "---:|".repeat(sizes.len()));
    for (i, kind) in ALL.iter().enumerate() {
        let cells: Vec<String> = edges.iter().map(|e| cell(&e.purges[i].1, 0)).collect();
        let r = ratio(median(&last.purges[i].1), median(&first.purges[i].1));
        let verdict = match kind {
            Kind::Url => "(no target)",
            _ if r <= 2.0 => "MET",
            _ => "MISSED",
        };
        println!("| {} | {} | {r:.2} | {verdict} |", kind.label(), cells.join(" | "));
    }
    println!("\nRepetitions beyond the distinct targets (url 100, prefix/tag 0.1 % 20, prefix 10 % 5, host 4,");
    println!("everything 1) match objects already purged; the edge's purge does not scan what it matches.");
    println!("\n### Hit throughput over the hot set (wrk -t2 -c64), req/s median (min–max)\n");
    println!("| entries | without purges | with purges | ratio | background purges/s | their µs, median (min–max) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for e in edges {
        let r = ratio(median(&e.busy), median(&e.quiet));
        let (quiet, busy, lat) = (cell(&e.quiet, 0), cell(&e.busy, 0), cell(&e.bg_latency, 0));
        println!("| {} | {quiet} | {busy} | {r:.2} | {:.0} | {lat} |", e.json["entries"], e.bg_rate);
    }
    println!("\n### Prefix purges against Varnish bans (ban lurker), ms median (min–max)\n");
    println!("| entries | kind | edge purge | Varnish `ban` answered | Varnish lurker done | edge / lurker done |");
    println!("|---:|---|---:|---:|---:|---:|");
    for (e, v) in edges.iter().zip(varnishes) {
        let Some(v) = v else { continue };
        for (kind, cli, done) in &v.bans {
            let edge_ms: Vec<f64> = e
                .purges
                .iter()
                .find(|(k, _)| k == kind)
                .map_or(Vec::new(), |(_, s)| s.iter().map(|us| us / 1e3).collect());
            let r = ratio(median(&edge_ms), median(done));
            let (edge_cell, cli_cell, done_cell) = (cell(&edge_ms, 3), cell(cli, 1), cell(done, 1));
            println!("| {} | {} | {edge_cell} | {cli_cell} | {done_cell} | {r:.4} |", e.json["entries"], kind.label());
        }
    }
    println!("\nVarnish: -p ban_lurker_age=0, defaults ban_lurker_sleep=0.010 s, ban_lurker_batch=1000;");
    println!(
        "\"done\" = the ban is completed or gone in `varnishadm ban.list -j` (polled every ~5 ms + varnishadm start)."
    );
}
