//! Varnish as a benchmark baseline: `varnishd` run as the current user in the foreground
//! (`-F -j none`) with a generated VCL in a temporary directory, `varnishadm` and `varnishstat`
//! against it, its resident memory (manager + child), stopped on drop. Also the Debian install
//! of missing baseline tools.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::edge_proc::{children, die_with_parent, free_port, rss_bytes, stop_child};
use crate::fill::HttpConn;

/// The VCL of the baseline: one backend (the origin) and the object's absolute URL copied into
/// `x-url` when it is stored, so `ban obj.http.x-url ~ ^…` bans only look at the object
/// (lurker-friendly, no `req.*`).
pub fn vcl(origin: SocketAddr) -> String {
    format!(
        "vcl 4.1;\n\nbackend default {{ .host = \"{}\"; .port = \"{}\"; }}\n\n\
         sub vcl_backend_response {{\n    set beresp.http.x-url = \"http://\" + bereq.http.host + bereq.url;\n}}\n",
        origin.ip(),
        origin.port()
    )
}

/// Where `program` is on `PATH` (plus `/usr/sbin` and `/sbin`, where Debian puts `varnishd`).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| candidate.is_file());
    found
}

/// Installs the Debian packages providing the `(program, package)` pairs that are missing
/// (`apt-get install -y --no-install-recommends`, as root or through sudo, without starting the
/// packages' services), or fails saying what to install.
pub fn ensure_tools(tools: &[(&str, &str)]) -> Result<()> {
    let mut missing: Vec<&str> = tools.iter().filter(|(p, _)| which(p).is_none()).map(|(_, pkg)| *pkg).collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing {} from Debian (apt-get; services are not started)", missing.join(" "));
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    // invoke-rc.d asks policy-rc.d whether a package may start its service: 101 = no.
    let script = format!(
        "set -e; p=/usr/sbin/policy-rc.d; made=0; if [ ! -e $p ]; then printf '#!/bin/sh\\nexit 101\\n' > $p; \
         chmod 755 $p; made=1; fi; export DEBIAN_FRONTEND=noninteractive; \
         apt-get install -y --no-install-recommends {pkgs} || {{ apt-get update -qq; apt-get install -y \
         --no-install-recommends {pkgs}; }}; rc=$?; [ $made = 1 ] && rm -f $p; exit $rc",
        pkgs = missing.join(" ")
    );
    let mut command = if root { Command::new("sh") } else { Command::new("sudo") };
    if !root {
        command.arg("sh");
    }
    let ok = command.arg("-c").arg(&script).status().is_ok_and(|s| s.success());
    if !ok || tools.iter().any(|(p, _)| which(p).is_none()) {
        bail!(
            "missing {}: install it (`apt-get install --no-install-recommends {}`)",
            missing.join(" "),
            missing.join(" ")
        );
    }
    Ok(())
}

/// A running `varnishd`, stopped on drop.
pub struct Varnish {
    child: Child,
    dir: tempfile::TempDir,
    /// The client listener.
    pub addr: SocketAddr,
    /// The parameters it was started with (`-p name=value`), for reports.
    pub params: Vec<(String, String)>,
}

impl Drop for Varnish {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(20));
    }
}

impl Varnish {
    /// Starts `varnishd -F -j none` with [`vcl`] for `origin`, `-s malloc,<storage_mib>m` and
    /// the extra parameters, and waits (60 s at most) until it answers.
    pub fn start(origin: SocketAddr, storage_mib: u64, params: &[(&str, &str)]) -> Result<Varnish> {
        let varnishd = which("varnishd").context("no varnishd: install the Debian package `varnish`")?;
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let vcl_path = dir.path().join("bench.vcl");
        std::fs::write(&vcl_path, vcl(origin))?;
        let mut command = Command::new(varnishd);
        die_with_parent(&mut command)
            .args(["-F", "-j", "none", "-n"])
            .arg(dir.path().join("n"))
            .args(["-a", &format!("127.0.0.1:{port}"), "-f"])
            .arg(&vcl_path)
            .args(["-s", &format!("malloc,{storage_mib}m")]);
        for (name, value) in params {
            command.args(["-p", &format!("{name}={value}")]);
        }
        let log = std::fs::File::create(dir.path().join("varnishd.log"))?;
        let child = command.stdout(log.try_clone()?).stderr(log).stdin(Stdio::null()).spawn()?;
        let varnish = Varnish {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            params: params.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        };
        let start = Instant::now();
        while HttpConn::connect(varnish.addr).and_then(|mut c| c.request("GET", "/", "up", "")).is_err() {
            if start.elapsed() > Duration::from_secs(60) {
                let log = std::fs::read_to_string(varnish.dir.path().join("varnishd.log")).unwrap_or_default();
                bail!("varnishd did not answer in 60 s: {log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(varnish)
    }

    fn name_dir(&self) -> PathBuf {
        self.dir.path().join("n")
    }

    /// Runs `varnishadm -n DIR <args>` and returns its output (fails on a non-zero exit).
    pub fn adm(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(which("varnishadm").context("no varnishadm")?)
            .arg("-n")
            .arg(self.name_dir())
            .args(args)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!("varnishadm {} failed: {text}{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(text)
    }

    /// The values of the counters `names` (e.g. `MAIN.n_object`) from `varnishstat -1`.
    pub fn stats(&self, names: &[&str]) -> Result<Vec<u64>> {
        let mut command = Command::new(which("varnishstat").context("no varnishstat")?);
        command.arg("-n").arg(self.name_dir()).arg("-1");
        for name in names {
            command.args(["-f", name]);
        }
        let out = command.output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        names
            .iter()
            .map(|name| {
                text.lines()
                    .find_map(|l| {
                        let mut words = l.split_whitespace();
                        (words.next() == Some(name)).then(|| words.next()?.parse().ok()).flatten()
                    })
                    .with_context(|| format!("no {name} in varnishstat: {text}"))
            })
            .collect()
    }

    /// Waits (at most `timeout`) until `MAIN.n_object` is at least `n` (the counters reach
    /// varnishstat with some delay); returns the last value. Fails when objects were evicted
    /// (`MAIN.n_lru_nuked`).
    pub fn wait_objects(&self, n: u64, timeout: Duration) -> Result<u64> {
        let start = Instant::now();
        loop {
            let [objects, nuked] = self.stats(&["MAIN.n_object", "MAIN.n_lru_nuked"])?[..] else {
                bail!("varnishstat")
            };
            if nuked > 0 {
                bail!("Varnish evicted {nuked} objects (storage too small)");
            }
            if objects >= n || start.elapsed() > timeout {
                return Ok(objects);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether a ban whose spec contains `needle` is still listed and not completed
    /// (`varnishadm ban.list -j`).
    pub fn ban_pending(&self, needle: &str) -> Result<bool> {
        let list: serde_json::Value = serde_json::from_str(&self.adm(&["ban.list", "-j"])?)?;
        let bans = list.as_array().context("ban.list -j is not an array")?;
        Ok(bans
            .iter()
            .skip(3)
            .any(|b| b["spec"].as_str().is_some_and(|s| s.contains(needle)) && b["completed"] != true))
    }

    /// Resident memory of the manager and its child (the cache process), in bytes.
    pub fn rss(&self) -> Result<u64> {
        let pid = self.child.id();
        let mut total = rss_bytes(pid)?;
        for child in children(pid) {
            total += rss_bytes(child).unwrap_or(0);
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcl_names_the_origin_and_copies_the_url() {
        let text = vcl("127.0.0.1:8080".parse().unwrap());
        assert!(text.contains(".host = \"127.0.0.1\"; .port = \"8080\""), "{text}");
        assert!(text.contains("beresp.http.x-url = \"http://\" + bereq.http.host + bereq.url"), "{text}");
        assert!(which("sh").is_some());
    }
}
