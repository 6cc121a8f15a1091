//! Resident memory and open file descriptors of every process of the cluster, every few
//! seconds, from `/proc/PID/status` (`VmRSS`) and `/proc/PID/fd`. The driver keeps the list of
//! processes current across restarts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One reading of one process.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Seconds since the soak started.
    pub t: f64,
    /// `control`, `edge-1`, …
    pub process: String,
    /// Its pid (a restarted edge has a new one).
    pub pid: u32,
    /// `VmRSS` in KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// `VmRSS` (KiB) and the number of open descriptors of `pid`, `None` when it is gone.
pub fn read(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss, fds))
}

/// Samples the processes in `pids` every `every` until `stop`.
pub fn start(
    pids: Arc<Mutex<Vec<(String, u32)>>>,
    start: Instant,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<Sample>> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let t = start.elapsed().as_secs_f64();
            for (process, pid) in pids.lock().unwrap().clone() {
                if let Some((rss_kib, fds)) = read(pid) {
                    samples.push(Sample { t, process, pid, rss_kib, fds });
                }
            }
            let next = Instant::now() + every;
            while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        samples
    })
}
