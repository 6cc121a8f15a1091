//! The soak's report, on stdout and as JSON: hit throughput per window, the RSS and descriptor
//! series of every process with, for the processes that ran the whole soak, the first and last
//! quarter's means (flat or growing), the purges by kind, the kills, and the count of
//! purged-but-served objects.

use serde_json::{json, Value};

use super::load::Window;
use super::sample::Sample;

/// Purges the storms submitted, by kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Storms {
    /// Single-URL purges.
    pub urls: u64,
    /// Prefix purges.
    pub prefixes: u64,
    /// Tag purges.
    pub tags: u64,
    /// Large URL batches.
    pub batches: u64,
    /// URLs in those batches.
    pub batch_urls: u64,
}

/// Everything the soak measured.
#[derive(Debug, Default)]
pub struct Report {
    /// How long the load ran.
    pub seconds: f64,
    /// The throughput window.
    pub window_secs: u64,
    /// Hit load per window.
    pub windows: Vec<Window>,
    /// RSS and descriptors.
    pub samples: Vec<Sample>,
    /// The purges.
    pub storms: Storms,
    /// `kill -9` of an edge, each followed by a restart.
    pub kills: u64,
    /// (edge, path) pairs checked after their purge was reported applied.
    pub checked: usize,
    /// Old objects served after their purge was reported applied.
    pub violations: Vec<String>,
    /// Batches not `done` when the soak ended (after waiting).
    pub not_done: Vec<u64>,
}

/// Mean of the first and last quarter of `values` (at least one value each).
fn quarters(values: &[u64]) -> Option<(f64, f64)> {
    if values.len() < 4 {
        return None;
    }
    let q = values.len() / 4;
    let mean = |s: &[u64]| s.iter().sum::<u64>() as f64 / s.len() as f64;
    Some((mean(&values[..q]), mean(&values[values.len() - q..])))
}

impl Report {
    /// Process names in sampling order.
    fn processes(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for s in &self.samples {
            if !names.contains(&s.process) {
                names.push(s.process.clone());
            }
        }
        names
    }

    /// Per process: pids, RSS and fds series, and the quarter means when one pid ran throughout.
    fn series(&self) -> Vec<Value> {
        self.processes()
            .into_iter()
            .map(|name| {
                let of: Vec<&Sample> = self.samples.iter().filter(|s| s.process == name).collect();
                let mut pids: Vec<u32> = of.iter().map(|s| s.pid).collect();
                pids.dedup();
                let rss: Vec<u64> = of.iter().map(|s| s.rss_kib).collect();
                let fds: Vec<u64> = of.iter().map(|s| s.fds).collect();
                let flat = |v: &[u64]| {
                    quarters(v).filter(|_| pids.len() == 1).map(|(first, last)| {
                        json!({"first_quarter_mean": first, "last_quarter_mean": last,
                               "growth_percent": if first > 0.0 { 100.0 * (last - first) / first } else { 0.0 }})
                    })
                };
                json!({
                    "process": name,
                    "pids": pids,
                    "t": of.iter().map(|s| (s.t * 10.0).round() / 10.0).collect::<Vec<_>>(),
                    "rss_kib": rss,
                    "fds": fds,
                    "rss_trend": flat(&rss),
                    "fds_trend": flat(&fds),
                })
            })
            .collect()
    }

    /// The JSON document (`bench/results/soak.json`).
    pub fn to_json(&self) -> Value {
        let w = self.window_secs as f64;
        json!({
            "seconds": self.seconds,
            "window_secs": self.window_secs,
            "load": self.windows.iter().map(|x| json!({
                "answers": x.answers, "hits": x.hits, "hits_per_sec": x.hits as f64 / w,
                "not_ok": x.not_ok, "connection_errors": x.errors,
            })).collect::<Vec<_>>(),
            "processes": self.series(),
            "purges": {
                "urls": self.storms.urls, "prefixes": self.storms.prefixes, "tags": self.storms.tags,
                "batches": self.storms.batches, "batch_urls": self.storms.batch_urls,
            },
            "edge_kills": self.kills,
            "checked": self.checked,
            "purged_but_served": self.violations.len(),
            "violations": self.violations,
            "not_done": self.not_done,
        })
    }

    /// The human summary.
    pub fn print(&self) {
        println!("soak: {:.0} s, windows of {} s", self.seconds, self.window_secs);
        println!("  window  answers     hits   hits/s  not-200  conn-errors");
        for (i, x) in self.windows.iter().enumerate() {
            println!(
                "  {i:>6} {:>8} {:>8} {:>8.0} {:>8} {:>12}",
                x.answers,
                x.hits,
                x.hits as f64 / self.window_secs as f64,
                x.not_ok,
                x.errors
            );
        }
        for series in self.series() {
            let max =
                |k: &str| series[k].as_array().and_then(|a| a.iter().filter_map(Value::as_u64).max()).unwrap_or(0);
            let trend = |k: &str| match &series[k] {
                Value::Null => "restarted (no trend)".to_owned(),
                t => format!(
                    "{:.0} → {:.0} ({:+.1} %)",
                    t["first_quarter_mean"].as_f64().unwrap_or(0.0),
                    t["last_quarter_mean"].as_f64().unwrap_or(0.0),
                    t["growth_percent"].as_f64().unwrap_or(0.0)
                ),
            };
            println!(
                "  {:<8} RSS max {} KiB, first→last quarter {}; fds max {}, {}",
                series["process"].as_str().unwrap_or(""),
                max("rss_kib"),
                trend("rss_trend"),
                max("fds"),
                trend("fds_trend")
            );
        }
        let s = self.storms;
        println!(
            "  purges: {} URLs, {} prefixes, {} tags, {} batches ({} URLs); {} edge kills",
            s.urls, s.prefixes, s.tags, s.batches, s.batch_urls, self.kills
        );
        println!(
            "  checked {} (edge, object) pairs after their purge was reported applied: {} purged but served; {} batches not done",
            self.checked,
            self.violations.len(),
            self.not_done.len()
        );
    }
}
