//! Following a batch until every counted edge applied it: `edgepurge purge --wait` and
//! `edgepurge status --watch`, optionally for at most `--timeout`.
//!
//! Following reads the batch's Server-Sent Events (`GET /v1/purges/{id}/events`: control sends a
//! `progress` event whenever an edge's progress on the batch changes and whenever an edge connects
//! or disconnects); when that stream cannot be opened, breaks off or goes silent, it says so and
//! polls `GET /v1/purges/{id}` every [`POLL`] instead. A terminal gets an indicatif bar on
//! stderr; anything else gets plain progress lines (`progress::progress_line`, which names the
//! edges the batch waits for), at most one per [`PLAIN_EVERY`]: a change that arrives sooner is
//! printed when that time is up, never dropped.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use edgepurge_api::{BatchStatus, EdgeProgress};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

use super::duration::exact;
use super::http::{encode_query, read_doc};
use super::progress::{bar_message, progress_line, timeout_report, Figures};
use super::{duration_ms, print_json, Answer, ApiClient};

/// Polling interval when the event stream is not available.
pub const POLL: Duration = Duration::from_millis(200);
/// Least time between two plain progress lines.
pub const PLAIN_EVERY: Duration = Duration::from_secs(1);
/// How often a pending plain line is looked at while no event arrives.
const TICK: Duration = Duration::from_millis(250);
/// How long the status read for an event's ETA, or for the timeout report, may take.
const SIDE_READ: Duration = Duration::from_secs(2);
/// Exit code when the batch finished but some edges reported tasks they could not apply.
pub const PARTIAL_EXIT: u8 = 2;
/// Exit code when `--timeout` passed before the batch was applied everywhere.
pub const TIMEOUT_EXIT: u8 = 3;

/// Shows progress: a bar on a terminal, else throttled lines on stderr.
struct Reporter {
    id: String,
    terminal: bool,
    /// Made at the first update, so it never shows an empty `0/0` bar.
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
    printed: String,
    /// A line that changed too soon after the last one; printed by a later `tick`.
    pending: Option<String>,
}

impl Reporter {
    fn new(id: &str) -> Self {
        let terminal = std::io::stderr().is_terminal();
        Self { id: id.to_owned(), terminal, bar: None, last_line: None, printed: String::new(), pending: None }
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
            bar.set_message(bar_message(doc));
            return;
        }
        // The final outcome is printed by `follow`; no progress line for it.
        let text = progress_line(&self.id, doc);
        self.pending = (!f.done && text != self.printed).then_some(text);
        self.tick();
    }

    /// Prints the pending plain line once [`PLAIN_EVERY`] has passed since the last one.
    fn tick(&mut self) {
        let due = self.last_line.is_none_or(|at| at.elapsed() >= PLAIN_EVERY);
        if !due {
            return;
        }
        if let Some(text) = self.pending.take() {
            eprintln!("{text}");
            self.last_line = Some(Instant::now());
            self.printed = text;
        }
    }

    /// A message of its own line (above the bar on a terminal).
    fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// How a wait ended.
enum Waited {
    /// The batch is done: its final status.
    Done(Answer<BatchStatus>),
    /// The timeout passed first: the latest status seen, if any.
    TimedOut(Option<Answer<BatchStatus>>),
}

/// Follows batch `id` until it is done or `timeout` passes; prints the outcome (the final JSON
/// with `json`). Exit 0 when applied everywhere, [`PARTIAL_EXIT`] when some edges failed tasks,
/// [`TIMEOUT_EXIT`] (naming the edges still missing) when the timeout passed first.
pub async fn follow(client: &ApiClient, id: &str, json: bool, timeout: Option<Duration>) -> Result<ExitCode> {
    let mut reporter = Reporter::new(id);
    let deadline = timeout.map(|t| Instant::now() + t);
    let result = wait_done(client, id, &mut reporter, deadline).await;
    reporter.finish();
    match result? {
        Waited::Done(answer) => report_done(id, answer, json),
        Waited::TimedOut(latest) => {
            let after = exact(timeout.unwrap_or_default());
            report_timeout(client, id, &after, latest, json).await
        }
    }
}

/// Prints a done batch: applied everywhere (0) or which edges failed tasks ([`PARTIAL_EXIT`]).
fn report_done(id: &str, answer: Answer<BatchStatus>, json: bool) -> Result<ExitCode> {
    let Answer { doc, json: raw } = answer;
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

/// Prints a wait that timed out: the summary (stdout, or stderr under the JSON with `json`) and
/// each edge still missing (stderr), from a fresh status read when control answers in time.
async fn report_timeout(
    client: &ApiClient,
    id: &str,
    after: &str,
    latest: Option<Answer<BatchStatus>>,
    json: bool,
) -> Result<ExitCode> {
    let path = format!("/v1/purges/{}", encode_query(id));
    let fresh = tokio::time::timeout(SIDE_READ, client.get::<BatchStatus>(&path)).await.ok().and_then(Result::ok);
    let latest = fresh.or(latest);
    if json {
        if let Some(answer) = &latest {
            print_json(&answer.json)?;
        }
    }
    let (summary, lines) = timeout_report(id, after, latest.as_ref().map(|a| &a.doc));
    if json {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    for line in lines {
        eprintln!("{line}");
    }
    eprintln!("hint: `edgepurge status {id} --watch` follows it further; `edgepurge edges` shows each edge's stream");
    Ok(ExitCode::from(TIMEOUT_EXIT))
}

/// `fut`, unless `deadline` passes first (`None`).
async fn until<T>(deadline: Option<Instant>, fut: impl std::future::Future<Output = T>) -> Option<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// The final status document: events first, polling when they are not available; or the
/// latest one seen when `deadline` passes first.
async fn wait_done(client: &ApiClient, id: &str, reporter: &mut Reporter, deadline: Option<Instant>) -> Result<Waited> {
    let path = format!("/v1/purges/{}", encode_query(id));
    let mut latest = None;
    let polling = format!("polling GET {path} every {} instead", duration_ms(POLL.as_millis() as u64));
    match until(deadline, follow_events(client, &path, reporter, &mut latest)).await {
        None => return Ok(Waited::TimedOut(latest)),
        Some(Ok(Some(done))) => return Ok(Waited::Done(done)),
        Some(Ok(None)) => {
            reporter.note(&format!("batch {id}: the event stream ended before the batch was done; {polling}"))
        }
        Some(Err(e)) => reporter.note(&format!("batch {id}: no event stream ({e:#}); {polling}")),
    }
    match until(deadline, poll(client, &path, reporter, &mut latest)).await {
        None => Ok(Waited::TimedOut(latest)),
        Some(done) => done.map(Waited::Done),
    }
}

/// Polls the status until it is done; each answer also goes into `latest`.
async fn poll(
    client: &ApiClient,
    path: &str,
    reporter: &mut Reporter,
    latest: &mut Option<Answer<BatchStatus>>,
) -> Result<Answer<BatchStatus>> {
    loop {
        let answer = client.get::<BatchStatus>(path).await?;
        reporter.update(&answer.doc);
        if Figures::of(&answer.doc).done {
            return Ok(answer);
        }
        *latest = Some(answer);
        tokio::time::sleep(POLL).await;
    }
}

/// Follows the event stream; the final document, or `None` if the stream ended early. Each
/// document also goes into `latest`.
async fn follow_events(
    client: &ApiClient,
    path: &str,
    reporter: &mut Reporter,
    latest: &mut Option<Answer<BatchStatus>>,
) -> Result<Option<Answer<BatchStatus>>> {
    let events_path = format!("{path}/events");
    let mut events = client.events(&events_path).await?;
    let mut tick = tokio::time::interval(TICK);
    loop {
        // `next` is cancel-safe, so a tick in between loses nothing.
        let event = tokio::select! {
            event = events.next() => event?,
            _ = tick.tick() => {
                reporter.tick();
                continue;
            }
        };
        let Some(event) = event else { return Ok(None) };
        if event.name != "progress" {
            bail!("the event stream reported: {}", event.data);
        }
        let json = serde_json::from_str(&event.data)?;
        let mut answer = read_doc::<BatchStatus>(&format!("the `progress` event of GET {events_path}"), json)?;
        if Figures::of(&answer.doc).done {
            return Ok(Some(answer));
        }
        // Events carry no ETA (the status document computes it per request): ask for it, briefly,
        // so a slow answer does not hold back the next event.
        if let Ok(Ok(status)) = tokio::time::timeout(SIDE_READ, client.get::<BatchStatus>(path)).await {
            answer.doc.eta_ms = status.doc.eta_ms;
        }
        reporter.update(&answer.doc);
        *latest = Some(answer);
    }
}
