//! `edgepurge status ID [--watch] [--json]` and the following of a batch until it is applied
//! everywhere, shared with `edgepurge purge --wait`.
//!
//! Following reads the batch's Server-Sent Events (`GET /v1/purges/{id}/events`, a `progress`
//! event per change); when that stream cannot be opened or breaks off it polls
//! `GET /v1/purges/{id}` every [`POLL`] instead. A terminal gets an indicatif bar on stderr;
//! anything else gets plain progress lines, at most one per [`PLAIN_EVERY`].

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use edgepurge_api::{BatchStatus, EdgeProgress};
use indicatif::{ProgressBar, ProgressStyle};

use super::http::{encode_query, read_doc};
use super::{duration_ms, print_json, show, table, Answer, ApiClient, ConnectArgs};

/// Polling interval when the event stream is not available.
pub const POLL: Duration = Duration::from_millis(200);
/// Least time between two plain progress lines.
pub const PLAIN_EVERY: Duration = Duration::from_secs(1);
/// Exit code when the batch finished but some edges reported tasks they could not apply.
pub const PARTIAL_EXIT: u8 = 2;

/// Arguments of `edgepurge status`.
#[derive(Args)]
pub struct StatusArgs {
    /// The batch id (printed by `edgepurge purge`).
    id: String,
    /// Follow the batch until it is applied everywhere (exit 2 if some edges failed tasks).
    #[arg(long)]
    watch: bool,
    /// Print the API's JSON status document instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Runs `edgepurge status`.
pub async fn run(args: StatusArgs) -> Result<ExitCode> {
    let client = args.connect.client()?;
    let id = args.id.trim();
    if args.watch {
        return follow(&client, id, args.json).await;
    }
    let answer = client.get::<BatchStatus>(&format!("/v1/purges/{}", encode_query(id))).await?;
    show(&answer, args.json, status_table)
}

/// The status document as a summary and a per-edge table.
pub fn status_table(doc: &BatchStatus) -> String {
    let mut out = format!(
        "batch {}: {}, {} task{}, {:.1}% applied, queued at {}",
        doc.id,
        doc.state.name(),
        doc.tasks,
        if doc.tasks == 1 { "" } else { "s" },
        doc.percent,
        doc.queued_at,
    );
    if let Some(eta) = doc.eta_ms {
        out.push_str(&format!(", ETA {}", duration_ms(eta)));
    }
    out.push('\n');
    if doc.edges.is_empty() {
        out.push_str("no edge counts for this batch (none was registered when it was accepted)\n");
        return out;
    }
    let rows: Vec<Vec<String>> = doc
        .edges
        .iter()
        .map(|e| {
            vec![
                e.edge.clone(),
                format!("{}/{}", e.applied, e.total),
                e.lag.to_string(),
                e.failed.to_string(),
                format!("{:.1}%", e.percent),
            ]
        })
        .collect();
    out.push_str(&table(&["EDGE", "APPLIED", "LAG", "FAILED", "PERCENT"], &rows));
    out
}

/// Progress figures of one status document.
struct Figures {
    done: bool,
    edges: u64,
    edges_applied: u64,
    tasks: u64,
    /// Tasks applied on every edge (the slowest edge's count).
    tasks_everywhere: u64,
    eta_ms: Option<u64>,
}

impl Figures {
    fn of(doc: &BatchStatus) -> Self {
        let edges = &doc.edges;
        Self {
            done: doc.state.is_done(),
            edges: edges.len() as u64,
            edges_applied: edges.iter().filter(|e| e.applied >= e.total).count() as u64,
            tasks: doc.tasks,
            tasks_everywhere: edges.iter().map(|e| e.applied).min().unwrap_or(doc.tasks),
            eta_ms: doc.eta_ms,
        }
    }

    /// The detail after the edge count: tasks (when more than one) and the ETA.
    fn detail(&self) -> String {
        let mut parts = Vec::new();
        if self.tasks > 1 {
            parts.push(format!("{}/{} tasks on every edge", self.tasks_everywhere, self.tasks));
        }
        // 0 is the control's estimate when nothing waits ahead on the queues: no information.
        if let (false, Some(eta @ 1..)) = (self.done, self.eta_ms) {
            parts.push(format!("ETA {}", duration_ms(eta)));
        }
        parts.join(", ")
    }
}

/// Shows progress: a bar on a terminal, else throttled lines on stderr.
struct Reporter {
    id: String,
    terminal: bool,
    /// Made at the first update, so it never shows an empty `0/0` bar.
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
    last_text: String,
}

impl Reporter {
    fn new(id: &str) -> Self {
        let terminal = std::io::stderr().is_terminal();
        Self { id: id.to_owned(), terminal, bar: None, last_line: None, last_text: String::new() }
    }

    /// A bar of `len` edges at `pos` (set before the first draw, so it never flashes `0/0`).
    fn make_bar(&self, len: u64, pos: u64) -> ProgressBar {
        let bar = ProgressBar::new(len);
        bar.set_position(pos);
        let style = ProgressStyle::with_template(
            "{spinner} batch {prefix}: [{bar:30.cyan/blue}] {pos}/{len} edges {msg} ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(self.id.clone());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    fn update(&mut self, doc: &BatchStatus) {
        let f = Figures::of(doc);
        if self.terminal {
            if self.bar.is_none() {
                self.bar = Some(self.make_bar(f.edges, f.edges_applied));
            }
            let Some(bar) = &self.bar else { return };
            bar.set_length(f.edges);
            bar.set_position(f.edges_applied);
            bar.set_message(f.detail());
            return;
        }
        let detail = f.detail();
        let text = format!(
            "batch {}: {}, {}/{} edges applied{}{}",
            self.id,
            doc.state.name(),
            f.edges_applied,
            f.edges,
            if detail.is_empty() { "" } else { ", " },
            detail
        );
        let due = self.last_line.is_none_or(|at| at.elapsed() >= PLAIN_EVERY);
        if due && text != self.last_text && !f.done {
            eprintln!("{text}");
            self.last_line = Some(Instant::now());
            self.last_text = text;
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Follows batch `id` until it is done; prints the outcome (the final JSON with `json`).
/// Exit 0 when applied everywhere, [`PARTIAL_EXIT`] when some edges failed tasks.
pub async fn follow(client: &ApiClient, id: &str, json: bool) -> Result<ExitCode> {
    let mut reporter = Reporter::new(id);
    let result = wait_done(client, id, &mut reporter).await;
    reporter.finish();
    let Answer { doc, json: raw } = result?;
    if json {
        print_json(&raw)?;
    }
    let f = Figures::of(&doc);
    let failed: Vec<&EdgeProgress> = doc.edges.iter().filter(|e| e.failed > 0).collect();
    if !json {
        if f.edges == 0 {
            println!("batch {id} done: no edge was registered when it was accepted, so there is nothing to wait for");
        } else if failed.is_empty() {
            println!("batch {id} done: applied on {}/{} edges", f.edges, f.edges);
        } else {
            println!("batch {id} partially failed: {} of {} edges could not apply every task", failed.len(), f.edges);
        }
    }
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for e in &failed {
        eprintln!("  {}: {} of {} tasks failed", e.edge, e.failed, e.total);
        // Reasons, when the API reports them (`failures: [{edge, reason, …}]`).
        for failure in doc.failures.iter().filter(|f| f.edge == e.edge) {
            eprintln!("    {}", failure.reason);
        }
    }
    if raw.get("failures").is_none() {
        eprintln!("  (the edges' logs say why; this API version does not report the reasons)");
    }
    Ok(ExitCode::from(PARTIAL_EXIT))
}

/// The final status document: events first, polling when they are not available.
async fn wait_done(client: &ApiClient, id: &str, reporter: &mut Reporter) -> Result<Answer<BatchStatus>> {
    let path = format!("/v1/purges/{}", encode_query(id));
    match follow_events(client, &path, reporter).await {
        Ok(Some(doc)) => return Ok(doc),
        Ok(None) => tracing::debug!("the event stream ended before the batch was done; polling"),
        Err(e) => tracing::debug!(error = %format!("{e:#}"), "no event stream; polling"),
    }
    loop {
        let answer = client.get::<BatchStatus>(&path).await?;
        reporter.update(&answer.doc);
        if Figures::of(&answer.doc).done {
            return Ok(answer);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Follows the event stream; the final document, or `None` if the stream ended early.
async fn follow_events(client: &ApiClient, path: &str, reporter: &mut Reporter) -> Result<Option<Answer<BatchStatus>>> {
    let events_path = format!("{path}/events");
    let mut events = client.events(&events_path).await?;
    while let Some(event) = events.next().await? {
        if event.name != "progress" {
            anyhow::bail!("the event stream reported: {}", event.data);
        }
        let json = serde_json::from_str(&event.data)?;
        let mut answer = read_doc::<BatchStatus>(&format!("the `progress` event of GET {events_path}"), json)?;
        if Figures::of(&answer.doc).done {
            return Ok(Some(answer));
        }
        // Events carry no ETA (the status document computes it per request): ask for it.
        if let Ok(status) = client.get::<BatchStatus>(path).await {
            if status.doc.eta_ms.is_some() {
                answer.doc.eta_ms = status.doc.eta_ms;
            }
        }
        reporter.update(&answer.doc);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepurge_api::{BatchState, Document};

    #[test]
    fn figures_count_edges_and_tasks_applied_everywhere() {
        let edge = |name: &str, applied| EdgeProgress {
            edge: name.into(),
            applied,
            total: 10,
            lag: 10 - applied,
            failed: 0,
            percent: applied as f64 * 10.0,
        };
        let doc = BatchStatus {
            state: BatchState::InProgress,
            tasks: 10,
            eta_ms: Some(3000),
            edges: vec![edge("a", 10), edge("b", 4)],
            ..BatchStatus::example()
        };
        let f = Figures::of(&doc);
        assert_eq!((f.done, f.edges, f.edges_applied, f.tasks_everywhere), (false, 2, 1, 4));
        assert_eq!(f.detail(), "4/10 tasks on every edge, ETA 3s");
        assert!(status_table(&doc).contains("b     4/10"), "{}", status_table(&doc));
    }
}
