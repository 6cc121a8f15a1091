//! Summaries and reports shared by every benchmark driver: medians with spread, percentiles,
//! ratios against a baseline measured in the same run, and the JSON report written next to the
//! printed table (with the machine and revision it was measured on).

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

/// Median, spread and tail of a set of samples (any unit).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    /// How many samples.
    pub n: usize,
    /// The median (mean of the two middle samples for an even count).
    pub median: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
    /// The 99th percentile (nearest rank).
    pub p99: f64,
    /// The arithmetic mean.
    pub mean: f64,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none (or any is NaN).
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|s| s.is_nan()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
        Some(Summary {
            n,
            median,
            min: sorted[0],
            max: sorted[n - 1],
            p99: percentile(&sorted, 0.99),
            mean: sorted.iter().sum::<f64>() / n as f64,
        })
    }

    /// `median (min–max)` with `decimals` decimals, for tables.
    pub fn cell(&self, decimals: usize) -> String {
        format!("{:.d$} ({:.d$}–{:.d$})", self.median, self.min, self.max, d = decimals)
    }
}

/// The nearest-rank percentile `p` (0 < p ≤ 1) of samples sorted ascending.
///
/// # Panics
/// When `sorted` is empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The median of `samples`, NaN when there are none.
pub fn median(samples: &[f64]) -> f64 {
    Summary::of(samples).map_or(f64::NAN, |s| s.median)
}

/// `median (min–max)` of `samples` with `decimals` decimals, `—` when there are none.
pub fn cell(samples: &[f64], decimals: usize) -> String {
    Summary::of(samples).map_or_else(|| "—".to_owned(), |s| s.cell(decimals))
}

/// A ratio for a table: `—` when it is not a number (no baseline was measured).
pub fn ratio_cell(r: f64, decimals: usize) -> String {
    if r.is_finite() {
        format!("{r:.decimals$}")
    } else {
        "—".to_owned()
    }
}

/// `value / baseline`, or NaN when the baseline is zero.
pub fn ratio(value: f64, baseline: f64) -> f64 {
    if baseline == 0.0 {
        f64::NAN
    } else {
        value / baseline
    }
}

/// The machine and revision a result was measured on: cores, memory, CPU model, kernel, date
/// (UTC) and `git describe` of the working tree.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, v)| v.trim());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({
        "date": command_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "nproc": nproc,
        "cpu": cpu,
        "mem_kib": mem_kib,
        "kernel": command_output("uname", &["-r"]),
        "revision": command_output("git", &["describe", "--always", "--dirty"]),
    })
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Writes `{"benchmark": name, "machine": machine(), "parameters": .., "results": ..}` to `path`
/// and says so on stdout.
pub fn write_report(path: &Path, name: &str, parameters: Value, results: Value) -> anyhow::Result<()> {
    let report = json!({"benchmark": name, "machine": machine(), "parameters": parameters, "results": results});
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_odd_and_even_counts() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.n, s.median, s.min, s.max, s.mean), (3, 2.0, 1.0, 3.0, 2.0));
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&sorted, 0.5), 50.0);
        assert_eq!(percentile(&sorted, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn ratio_of_zero_baseline_is_nan() {
        assert!(ratio(1.0, 0.0).is_nan());
        assert_eq!(ratio(3.0, 2.0), 1.5);
    }

    #[test]
    fn cell_shows_median_and_range() {
        assert_eq!(Summary::of(&[1.0, 2.0, 4.0]).unwrap().cell(1), "2.0 (1.0–4.0)");
        assert_eq!(cell(&[1.0, 2.0, 4.0], 1), "2.0 (1.0–4.0)");
        assert_eq!(cell(&[], 1), "—");
        assert!(median(&[]).is_nan());
        assert_eq!((ratio_cell(1.234, 2), ratio_cell(f64::NAN, 2)), ("1.23".to_owned(), "—".to_owned()));
    }
}
