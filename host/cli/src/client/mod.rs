//! The operator commands that talk to a running control role's purge API: `edgepurge purge`,
//! `status`, `records`, `edges` and `queues`.
//!
//! Where the API is and which token to present come from, in order: the `--server`/`--token`
//! flags, the `EDGEPURGE_SERVER`/`EDGEPURGE_TOKEN` environment variables, and the `cluster.json`
//! that `edgepurge dev` writes (`--cluster FILE`, `EDGEPURGE_CLUSTER`, else
//! `./.edgepurge-dev/cluster.json`). [`ApiClient`] is a small hyper client over `edgepurge-tls`'
//! rustls (ring) that turns API errors into messages with a hint of what to do.

pub mod duration;
pub mod follow;
pub mod http;
pub mod progress;
pub mod purge;
pub mod status;
pub mod views;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;

pub use http::{Answer, ApiClient};

/// Where the local cluster of `edgepurge dev` describes itself, relative to the working directory.
pub const DEFAULT_CLUSTER_FILE: &str = ".edgepurge-dev/cluster.json";

/// How to reach the control API: shared by every operator command.
#[derive(Args, Debug, Clone, Default)]
pub struct ConnectArgs {
    /// Base URL of the control API, e.g. http://127.0.0.1:8443 [env: EDGEPURGE_SERVER].
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// API token (`edgepurge token create` makes one) [env: EDGEPURGE_TOKEN].
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// PEM CA certificate to trust for an https API signed by a private CA.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// The cluster.json of a running `edgepurge dev` to take the API and token from
    /// [env: EDGEPURGE_CLUSTER; default: ./.edgepurge-dev/cluster.json].
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
}

/// The resolved connection: API base URL, token, and an optional private CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The API's base URL without a trailing slash.
    pub server: String,
    /// The bearer token.
    pub token: String,
    /// Extra CA file to trust for https.
    pub ca: Option<PathBuf>,
}

/// What a `cluster.json` contributes.
#[derive(Debug, Default)]
struct Cluster {
    api: Option<String>,
    token: Option<String>,
    ca: Option<PathBuf>,
}

/// The message when no API is configured: the three ways to give one.
pub fn not_configured() -> String {
    format!(
        "no control API configured; give it one of three ways:\n  \
         1. flags: --server URL --token TOKEN\n  \
         2. environment: EDGEPURGE_SERVER=URL and EDGEPURGE_TOKEN=TOKEN\n  \
         3. a running local cluster (`make dev`): its cluster.json via --cluster FILE, EDGEPURGE_CLUSTER=FILE, \
         or ./{DEFAULT_CLUSTER_FILE} in this directory"
    )
}

impl ConnectArgs {
    /// Resolves flags, then the environment, then a cluster.json (see the module docs).
    pub fn resolve(&self) -> Result<Target> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut server = self.server.clone().or_else(|| env("EDGEPURGE_SERVER"));
        let mut token = self.token.clone().or_else(|| env("EDGEPURGE_TOKEN"));
        let mut ca = self.ca.clone();
        if server.is_none() || token.is_none() || ca.is_none() {
            let cluster = match self.cluster.clone().or_else(|| env("EDGEPURGE_CLUSTER").map(PathBuf::from)) {
                // Named explicitly: it must be readable.
                Some(path) => Some(read_cluster(&path)?),
                None => {
                    let default = Path::new(DEFAULT_CLUSTER_FILE);
                    if default.is_file() {
                        Some(read_cluster(default)?)
                    } else {
                        None
                    }
                }
            };
            if let Some(cluster) = cluster {
                // A cluster's CA belongs to its API: take it only along with that API.
                if server.is_none() {
                    ca = ca.or(cluster.ca);
                }
                server = server.or(cluster.api);
                token = token.or(cluster.token);
            }
        }
        match (server, token) {
            (Some(server), Some(token)) => {
                let server = server.trim().trim_end_matches('/').to_owned();
                if !server.starts_with("http://") && !server.starts_with("https://") {
                    bail!("the control API address `{server}` must start with http:// or https://");
                }
                Ok(Target { server, token: token.trim().to_owned(), ca })
            }
            (Some(_), None) => bail!("a control API address is set but no token: {}", not_configured()),
            (None, Some(_)) => bail!("a token is set but no control API address: {}", not_configured()),
            (None, None) => bail!("{}", not_configured()),
        }
    }

    /// The client for the resolved target.
    pub fn client(&self) -> Result<ApiClient> {
        ApiClient::new(self.resolve()?)
    }
}

/// Reads `api`, `token` and `ca` of a cluster.json; a relative `ca` is taken relative to the file.
fn read_cluster(path: &Path) -> Result<Cluster> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("cannot read the cluster file {} (is `edgepurge dev` running there?)", path.display())
    })?;
    let json: Value =
        serde_json::from_str(&text).with_context(|| format!("the cluster file {} is not JSON", path.display()))?;
    let text_of = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
    let ca = text_of("ca").map(|ca| {
        let ca = PathBuf::from(ca);
        match path.parent() {
            Some(dir) if ca.is_relative() => dir.join(ca),
            _ => ca,
        }
    });
    Ok(Cluster { api: text_of("api"), token: text_of("token"), ca })
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let head: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&head).chain(rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i < last {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// An optional value as a table cell: `-` when there is none.
pub fn or_dash<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// A flag as a table cell.
pub fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_owned()
}

/// Milliseconds as a short human duration: `850ms`, `12s`, `3m20s`, `2h05m`.
pub fn duration_ms(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0 => format!("{ms}ms"),
        1..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// Bytes as a short human size (`512 B`, `4.0 KiB`, `1.5 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints a view's answer: its JSON with `--json`, else its document as the view's `table`;
/// exits 0.
pub fn show<T>(answer: &Answer<T>, json: bool, table: fn(&T) -> String) -> Result<std::process::ExitCode> {
    if json {
        print_json(&answer.json)?;
    } else {
        print!("{}", table(&answer.doc));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let rows = vec![vec!["1".to_owned(), "long value".to_owned(), "x".to_owned()]];
        assert_eq!(table(&["ID", "V", "LAST"], &rows), "ID  V           LAST\n1   long value  x\n");
    }

    #[test]
    fn durations_and_sizes_are_short() {
        assert_eq!(duration_ms(850), "850ms");
        assert_eq!(duration_ms(12_000), "12s");
        assert_eq!(duration_ms(200_000), "3m20s");
        assert_eq!(duration_ms(7_500_000), "2h05m");
        assert_eq!(bytes(10), "10 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }

    #[test]
    fn cluster_ca_is_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.json");
        std::fs::write(&path, r#"{"api": "https://127.0.0.1:1", "token": "t", "ca": "certs/ca.pem"}"#).unwrap();
        let args = ConnectArgs { cluster: Some(path), ..Default::default() };
        let target = args.resolve().unwrap();
        assert_eq!(target.server, "https://127.0.0.1:1");
        assert_eq!(target.ca, Some(dir.path().join("certs/ca.pem")));
        let flags = ConnectArgs { server: Some("http://h/".into()), token: Some("x".into()), ..args };
        assert_eq!(flags.resolve().unwrap(), Target { server: "http://h".into(), token: "x".into(), ca: None });
    }
}
