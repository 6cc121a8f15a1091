//! `wrk` over a set of URLs: a generated Lua script cycles through the paths (each thread from
//! its own starting point) with one `Host`, and the run's requests per second are read back.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// What one `wrk` run measured.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct WrkRun {
    /// Requests per second.
    pub rps: f64,
    /// Non-2xx answers and socket errors.
    pub errors: u64,
}

/// Writes a Lua script to `path` that requests `paths` round-robin with `Host: host`.
pub fn write_script(path: &Path, host: &str, paths: &[String]) -> Result<()> {
    let mut lua = String::from("local paths = {\n");
    for p in paths {
        lua.push_str(&format!("  \"{p}\",\n"));
    }
    lua.push_str(&format!(
        "}}\nwrk.headers[\"Host\"] = \"{host}\"\nlocal i = 0\n\
         function init(args) i = math.random(#paths) end\n\
         function request()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n"
    ));
    std::fs::write(path, lua)?;
    Ok(())
}

/// Runs `wrk -t threads -c connections -d secs s -s script http://addr/` and parses it.
pub fn run(addr: SocketAddr, script: &Path, threads: usize, connections: usize, secs: u64) -> Result<WrkRun> {
    let out = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections.to_string(), "-d", &format!("{secs}s"), "-s"])
        .arg(script)
        .arg(format!("http://{addr}/"))
        .output()
        .context("cannot run wrk (Debian package `wrk`)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    parse(&text).with_context(|| format!("cannot read wrk's output: {text}"))
}

fn parse(text: &str) -> Option<WrkRun> {
    let rps = text.lines().find_map(|l| l.strip_prefix("Requests/sec:")?.trim().parse().ok())?;
    let mut errors = 0;
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += n.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            errors += rest.split(',').filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok()).sum::<u64>();
        }
    }
    Some(WrkRun { rps, errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_output() {
        let text =
            "Running 1s test\n  1000 requests in 1.00s\n  Socket errors: connect 0, read 2, write 0, timeout 1\n\
                    Non-2xx or 3xx responses: 3\nRequests/sec:  12345.67\nTransfer/sec: 1MB\n";
        let run = parse(text).unwrap();
        assert_eq!((run.rps, run.errors), (12345.67, 6));
    }
}
