//! The outcome every case asserts: **no purge reported applied on an edge while that edge still
//! serves the old object.** A [`Purge`] remembers the origin's generation before it (every
//! object cached until then carries that generation or an older one) and which paths it covers;
//! [`purged_but_served`] asks control what it reports applied on each running edge (the batch's
//! per-edge progress, or per URL through `/v1/records` while a batch is part-way) and GETs those
//! paths through that edge: an answer whose body still has the old generation is a violation,
//! whatever its `Cache-Status` says.

use serde_json::{json, Value};

use crate::api::{applied, edge_progress, url};
use crate::cluster::Cluster;

/// How many of a purge's paths are checked per edge (evenly spread, the first and last
/// included): a GET each, and a records query each while the batch is part-way.
pub const SAMPLE: usize = 24;

/// A submitted purge and what it covers.
#[derive(Debug, Clone)]
pub struct Purge {
    /// Its batch id.
    pub batch: u64,
    /// The origin's generation before it: an answer with this one or an older one is the old
    /// object.
    pub old: u64,
    /// Paths it covers that are checked ([`SAMPLE`] of them at most).
    pub check: Vec<String>,
    /// Whether its tasks are the URLs of `check` (then `/v1/records?url=` knows each one).
    pub by_url: bool,
}

/// `n` of `paths`, evenly spread, first and last included (the same ones every time).
pub fn sample(paths: &[String], n: usize) -> Vec<String> {
    if paths.len() <= n {
        return paths.to_vec();
    }
    let step = (paths.len() - 1) as f64 / (n - 1) as f64;
    (0..n).map(|k| paths[((k as f64) * step).round() as usize].clone()).collect()
}

impl Cluster {
    /// New content at the origin, then one batch purging the URLs of `paths` (JSON up to 1,000
    /// URLs, a `text/plain` bulk body above).
    pub fn purge_urls(&self, paths: &[String]) -> Purge {
        let old = self.origin.bump();
        let urls: Vec<String> = paths.iter().map(|p| url(p)).collect();
        let batch = if urls.len() <= 1_000 {
            self.purge(&json!({ "urls": urls }))
        } else {
            let reply = self.submit_text(&urls).expect("control answers the bulk purge");
            assert_eq!(reply.status, 202, "bulk purge of {} URLs: {}", urls.len(), reply.text());
            reply.json()["id"].as_u64().expect("an id")
        };
        Purge { batch, old, check: sample(paths, SAMPLE), by_url: true }
    }

    /// New content at the origin, then the purge `body` (prefixes, tags, hosts …), which
    /// covers `covered`.
    pub fn purge_covering(&self, body: &Value, covered: &[String]) -> Purge {
        let old = self.origin.bump();
        let batch = self.purge(body);
        Purge { batch, old, check: sample(covered, SAMPLE), by_url: false }
    }
}

/// What a check found.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// (edge, path) pairs reported applied and fetched.
    pub checked: usize,
    /// Each old object served after its purge was reported applied on that edge.
    pub violations: Vec<String>,
}

/// Checks every purge on every running edge (needs control running: it is what reports).
pub fn purged_but_served(cluster: &Cluster, purges: &[Purge]) -> Outcome {
    let mut outcome = Outcome::default();
    for purge in purges {
        let status = cluster.batch(purge.batch);
        for (i, edge) in cluster.edges.iter().enumerate().filter(|(_, e)| e.proc.is_some()) {
            let total = edge_progress(&status, &edge.name).and_then(|e| e["total"].as_u64()).unwrap_or(0);
            let whole = total > 0 && applied(&status, &edge.name) >= total;
            for path in &purge.check {
                if !(whole || purge.by_url && record_applied(cluster, purge.batch, path, &edge.name)) {
                    continue;
                }
                outcome.checked += 1;
                let reply = cluster.get(i, path);
                if reply.status == 200 && reply.version().is_some_and(|v| v <= purge.old) {
                    outcome.violations.push(format!(
                        "{} served {path} generation {:?} (cache-status `{}`) after batch {} (generation ≤ {}) was \
                         reported applied on it",
                        edge.name,
                        reply.version(),
                        reply.cache_status(),
                        purge.batch,
                        purge.old
                    ));
                }
            }
        }
    }
    outcome
}

/// Whether `/v1/records?url=` says the task of `batch` for `path` is applied on `edge`.
fn record_applied(cluster: &Cluster, batch: u64, path: &str, edge: &str) -> bool {
    let (_, page) = cluster.api("GET", &format!("/v1/records?url={}&limit=1000", url(path)), None);
    let entries = page["entries"].as_array().cloned().unwrap_or_default();
    entries.iter().filter(|e| e["batch"] == batch).any(|e| {
        e["edges"].as_array().is_some_and(|edges| edges.iter().any(|x| x["edge"] == edge && x["applied"] == true))
    })
}

/// Fails the test when any purge reported applied on an edge is still served there as the old
/// object; returns how many (edge, path) pairs were checked, so a case can insist it checked
/// something.
pub fn assert_no_purged_but_served(cluster: &Cluster, purges: &[Purge]) -> usize {
    let outcome = purged_but_served(cluster, purges);
    if !outcome.violations.is_empty() {
        cluster.dump_logs();
        panic!("purged but served ({}):\n{}", outcome.violations.len(), outcome.violations.join("\n"));
    }
    outcome.checked
}
