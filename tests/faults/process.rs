//! One process of the real binary: started with `--config`, its stderr appended to a log file,
//! the first lines of its stdout (where the roles say which addresses they bound) returned, and
//! `kill -9`, SIGTERM or a kill on drop to end it. Also where the binary is, and the suite's
//! patience.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a wait may take before the test fails with every log: generous (the machines are
/// shared and slow); a wait ends as soon as its condition holds.
pub fn patience() -> Duration {
    Duration::from_secs(if crate::scale::full() { 900 } else { 180 })
}

/// The `edgepurge` binary: `EDGEPURGE_BIN`, else the one next to this test binary (built by
/// `cargo build -p edgepurge`, which `make test` runs first). `None` (after saying so) when it
/// is missing.
pub fn binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("EDGEPURGE_BIN") {
        return Some(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("edgepurge");
    if bin.exists() {
        return Some(bin);
    }
    eprintln!("SKIPPED: {} is missing; build it with `cargo build -p edgepurge` (make test does)", bin.display());
    None
}

/// A running process, killed (`kill -9`) on drop.
pub struct Proc {
    child: Child,
    /// Its stderr (the log), appended across restarts.
    pub log: PathBuf,
}

impl Proc {
    /// Starts `BIN ARGS --config CONFIG` and waits for the first `lines` lines of its stdout;
    /// `Err` with what it printed when it exits first.
    pub fn spawn(
        bin: &Path,
        args: &[&str],
        config: &Path,
        log: PathBuf,
        lines: usize,
    ) -> Result<(Proc, Vec<String>), String> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let mut child = Command::new(bin)
            .args(args)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", std::env::var("EDGEPURGE_FAULTS_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = mpsc::channel();
        // Keep reading, so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut printed = Vec::new();
        let deadline = Instant::now() + patience();
        while printed.len() < lines {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => printed.push(line.trim().to_owned()),
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    return Err(format!("{args:?} printed {printed:?} and ended ({status:?}); see {}", log.display()));
                }
            }
        }
        Ok((Proc { child, log }, printed))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        self.child.wait().expect("wait for the process")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kill -NAME PID`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().expect("kill runs");
    assert!(status.success(), "kill -{name} {pid} failed");
}
