//! What the CLI says about a batch's progress, from its status document: the figures, the
//! progress line of `purge --wait` / `status --watch` (which names the edges the batch waits for,
//! disconnected ones first), the one-shot `status` table, and the report of a wait that timed
//! out. Pure text, so the wording is tested without a server.

use edgepurge_api::{BatchStatus, EdgeProgress};

use super::{duration_ms, table, yes_no};

/// How many waited-for edges a progress line names before it says `and N more`.
const NAMED: usize = 3;

/// Progress figures of one status document.
pub struct Figures {
    /// The batch will not change any more.
    pub done: bool,
    /// Edges that count for the batch.
    pub edges: u64,
    /// Edges that applied all of it.
    pub edges_applied: u64,
    /// Tasks in the batch.
    pub tasks: u64,
    /// Tasks applied on every edge (the slowest edge's count).
    pub tasks_everywhere: u64,
    /// The API's ETA.
    pub eta_ms: Option<u64>,
    /// Disconnected edges that have not applied all of it: no ETA while there are any.
    pub blocked: Vec<String>,
}

impl Figures {
    /// The figures of `doc`.
    pub fn of(doc: &BatchStatus) -> Self {
        let edges = &doc.edges;
        Self {
            done: doc.state.is_done(),
            edges: edges.len() as u64,
            edges_applied: edges.iter().filter(|e| e.applied >= e.total).count() as u64,
            tasks: doc.tasks,
            tasks_everywhere: edges.iter().map(|e| e.applied).min().unwrap_or(doc.tasks),
            eta_ms: doc.eta_ms,
            blocked: missing(doc).filter(|e| !e.connected).map(|e| e.edge.clone()).collect(),
        }
    }

    /// The detail after the edge count: tasks (when more than one) and the ETA, or why there is
    /// none.
    pub fn detail(&self) -> String {
        let mut parts = Vec::new();
        if self.tasks > 1 {
            parts.push(format!("{}/{} tasks on every edge", self.tasks_everywhere, self.tasks));
        }
        if !self.done && !self.blocked.is_empty() {
            parts.push("no ETA while an edge is disconnected".to_owned());
        } else if let (false, Some(eta @ 1..)) = (self.done, self.eta_ms) {
            // 0 is the control's estimate when nothing waits ahead on the queues: no information.
            parts.push(format!("ETA {}", duration_ms(eta)));
        }
        parts.join(", ")
    }
}

/// The edges that have not applied all of the batch: disconnected ones first, then by lag.
fn missing(doc: &BatchStatus) -> impl Iterator<Item = &EdgeProgress> {
    let mut edges: Vec<&EdgeProgress> = doc.edges.iter().filter(|e| e.applied < e.total).collect();
    edges.sort_by(|a, b| a.connected.cmp(&b.connected).then(b.lag.cmp(&a.lag)).then(a.edge.cmp(&b.edge)));
    edges.into_iter()
}

/// `waiting for edge-2 (disconnected, 0/1 tasks), edge-1 (3/10 tasks)`, at most [`NAMED`]
/// edges; empty when the batch waits for none.
pub fn waiting_for(doc: &BatchStatus) -> String {
    let edges: Vec<&EdgeProgress> = missing(doc).collect();
    if edges.is_empty() {
        return String::new();
    }
    let named: Vec<String> = edges
        .iter()
        .take(NAMED)
        .map(|e| {
            let state = if e.connected { "" } else { "disconnected, " };
            format!("{} ({state}{}/{} tasks)", e.edge, e.applied, e.total)
        })
        .collect();
    let mut text = format!("waiting for {}", named.join(", "));
    if edges.len() > NAMED {
        text.push_str(&format!(" and {} more", edges.len() - NAMED));
    }
    text
}

/// What a progress bar shows after `applied/total edges`: the detail, then the waited-for edges.
pub fn bar_message(doc: &BatchStatus) -> String {
    let parts: Vec<String> =
        [Figures::of(doc).detail(), waiting_for(doc)].into_iter().filter(|p| !p.is_empty()).collect();
    parts.join("; ")
}

/// The plain progress line: `batch 7: in-progress, 1/2 edges applied, no ETA while an edge is
/// disconnected; waiting for edge-2 (disconnected, 0/1 tasks)`.
pub fn progress_line(id: &str, doc: &BatchStatus) -> String {
    let f = Figures::of(doc);
    let mut line = format!("batch {id}: {}, {}/{} edges applied", doc.state.name(), f.edges_applied, f.edges);
    let detail = f.detail();
    if !detail.is_empty() {
        line.push_str(", ");
        line.push_str(&detail);
    }
    let waiting = waiting_for(doc);
    if !waiting.is_empty() {
        line.push_str("; ");
        line.push_str(&waiting);
    }
    line
}

/// The status document as a summary and a per-edge table. A disconnected edge that has not
/// applied the batch has no ETA, and the summary says why the batch has none.
pub fn status_table(doc: &BatchStatus) -> String {
    let f = Figures::of(doc);
    let mut out = format!(
        "batch {}: {}, {} task{}, {:.1}% applied, queued at {}",
        doc.id,
        doc.state.name(),
        doc.tasks,
        if doc.tasks == 1 { "" } else { "s" },
        doc.percent,
        doc.queued_at,
    );
    if !f.done && !f.blocked.is_empty() {
        let (names, verb) = (f.blocked.join(", "), if f.blocked.len() == 1 { "is" } else { "are" });
        out.push_str(&format!(", no ETA: {names} {verb} disconnected (an edge applies nothing until it reconnects)"));
    } else if let Some(eta) = doc.eta_ms {
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
            let eta = match (e.applied >= e.total, e.connected, doc.eta_ms) {
                (true, ..) => "-".to_owned(),
                (false, false, _) => "none: disconnected".to_owned(),
                (false, true, Some(eta)) => duration_ms(eta),
                (false, true, None) => "-".to_owned(),
            };
            vec![
                e.edge.clone(),
                format!("{}/{}", e.applied, e.total),
                e.lag.to_string(),
                e.failed.to_string(),
                format!("{:.1}%", e.percent),
                yes_no(e.connected),
                eta,
            ]
        })
        .collect();
    out.push_str(&table(&["EDGE", "APPLIED", "LAG", "FAILED", "PERCENT", "CONNECTED", "ETA"], &rows));
    out
}

/// The report of a wait that ended at its timeout: a summary line and one line per edge that
/// has not applied the batch (its stream, when control last heard from it, tasks applied, lag).
/// `doc` is `None` when control never answered with the batch's status.
pub fn timeout_report(id: &str, after: &str, doc: Option<&BatchStatus>) -> (String, Vec<String>) {
    let Some(doc) = doc else {
        return (format!("batch {id} not done after {after}: control did not report the batch's progress"), Vec::new());
    };
    let edges: Vec<&EdgeProgress> = missing(doc).collect();
    let summary = format!(
        "batch {id} not done after {after}: {} of {} edge{} {} not applied it",
        edges.len(),
        doc.edges.len(),
        if doc.edges.len() == 1 { "" } else { "s" },
        if edges.len() == 1 { "has" } else { "have" },
    );
    let lines = edges
        .iter()
        .map(|e| {
            let stream = match (e.connected, &e.last_seen) {
                (true, Some(at)) => format!("connected, last heard from at {at}"),
                (true, None) => "connected".to_owned(),
                (false, Some(at)) => format!("disconnected, last heard from at {at}"),
                (false, None) => "disconnected, no stream to this control node since it started".to_owned(),
            };
            format!("  {}: {stream}; {}/{} tasks applied, lag {}", e.edge, e.applied, e.total, e.lag)
        })
        .collect();
    (summary, lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepurge_api::{BatchState, Document};

    fn edge(name: &str, applied: u64, connected: bool) -> EdgeProgress {
        EdgeProgress {
            edge: name.into(),
            applied,
            total: 10,
            lag: 10 - applied,
            failed: 0,
            percent: applied as f64 * 10.0,
            connected,
            last_seen: connected.then(|| "2026-11-22T01:02:04.000Z".to_owned()),
        }
    }

    fn doc(edges: Vec<EdgeProgress>) -> BatchStatus {
        BatchStatus { state: BatchState::InProgress, tasks: 10, eta_ms: Some(3000), edges, ..BatchStatus::example() }
    }

    #[test]
    fn figures_count_edges_and_tasks_applied_everywhere() {
        let doc = doc(vec![edge("a", 10, true), edge("b", 4, true)]);
        let f = Figures::of(&doc);
        assert_eq!((f.done, f.edges, f.edges_applied, f.tasks_everywhere), (false, 2, 1, 4));
        assert_eq!(f.detail(), "4/10 tasks on every edge, ETA 3s");
        assert!(status_table(&doc).contains("b     4/10"), "{}", status_table(&doc));
        assert_eq!(
            progress_line("7", &doc),
            "batch 7: in-progress, 1/2 edges applied, 4/10 tasks on every edge, ETA 3s; waiting for b (4/10 tasks)"
        );
    }

    #[test]
    fn the_progress_line_names_a_disconnected_edge_first_and_gives_no_eta() {
        let mut doc = doc(vec![edge("a", 10, true), edge("b", 8, true), edge("c", 0, false)]);
        doc.eta_ms = None;
        assert_eq!(
            progress_line("7", &doc),
            "batch 7: in-progress, 1/3 edges applied, 0/10 tasks on every edge, no ETA while an edge is disconnected; \
             waiting for c (disconnected, 0/10 tasks), b (8/10 tasks)"
        );
        // A disconnected edge that is through the batch holds nothing up.
        let through = BatchStatus { edges: vec![edge("a", 10, false), edge("b", 8, true)], ..doc.clone() };
        assert_eq!(
            progress_line("7", &through),
            "batch 7: in-progress, 1/2 edges applied, 8/10 tasks on every edge; waiting for b (8/10 tasks)"
        );
        let many = BatchStatus { edges: (0..5).map(|i| edge(&format!("e{i}"), i, i != 3)).collect(), ..doc };
        assert!(
            progress_line("7", &many)
                .ends_with("waiting for e3 (disconnected, 3/10 tasks), e0 (0/10 tasks), e1 (1/10 tasks) and 2 more"),
            "{}",
            progress_line("7", &many)
        );
    }

    #[test]
    fn the_status_table_shows_no_eta_for_a_disconnected_edge() {
        let mut doc = doc(vec![edge("a", 10, true), edge("b", 4, false)]);
        doc.eta_ms = None;
        let text = status_table(&doc);
        let mut lines = text.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .ends_with(", no ETA: b is disconnected (an edge applies nothing until it reconnects)"),
            "{text}"
        );
        assert_eq!(lines.next().unwrap(), "EDGE  APPLIED  LAG  FAILED  PERCENT  CONNECTED  ETA");
        assert_eq!(lines.next().unwrap(), "a     10/10    0    0       100.0%   yes        -");
        assert_eq!(lines.next().unwrap(), "b     4/10     6    0       40.0%    no         none: disconnected");
    }

    #[test]
    fn the_timeout_report_names_each_missing_edge_and_its_state() {
        let doc = doc(vec![edge("a", 10, true), edge("b", 4, true), edge("c", 0, false)]);
        let (summary, lines) = timeout_report("7", "2s", Some(&doc));
        assert_eq!(summary, "batch 7 not done after 2s: 2 of 3 edges have not applied it");
        assert_eq!(
            lines,
            [
                "  c: disconnected, no stream to this control node since it started; 0/10 tasks applied, lag 10",
                "  b: connected, last heard from at 2026-11-22T01:02:04.000Z; 4/10 tasks applied, lag 6",
            ]
        );
        let (summary, lines) = timeout_report("7", "2s", None);
        assert_eq!(summary, "batch 7 not done after 2s: control did not report the batch's progress");
        assert!(lines.is_empty());
    }
}
