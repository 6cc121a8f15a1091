//! Read-only views over the records: `GET /v1/records` (S0.8: every purge that covered a URL,
//! prefix, tag or host, with its state on each edge) and `GET /v1/edges`.
//!
//! Per-edge state is computed from the watermarks (DESIGN decision 6): a request is applied on
//! an edge when the edge's watermark on the carrying task's queue reaches that task's offset.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use edgepurge_api::{
    EdgeApplied, EdgeEventReport, EdgeList, EdgePolicyReport, EdgeQueue, EdgeState, RecordEntry, RecordPage,
};
use edgepurge_control_store::{ControlStore, Edge, RecordCursor, RecordQuery};
use edgepurge_purge_model::{cache_prefix, cache_url};
use serde::Deserialize;

use crate::auth::host_allowed;
use crate::authenticated::Authenticated;
use crate::response::Checked;
use crate::state::AppState;
use crate::{rfc3339, Error};

/// Events shown per edge in `GET /v1/edges`.
const EVENTS_SHOWN: usize = 5;

/// Largest page of `GET /v1/records`.
pub const MAX_PAGE: usize = 1000;

/// `GET /v1/records` parameters: exactly one of `url`, `prefix`, `tag`, `host`, not empty;
/// `after` (the `next` of the previous page) and `limit` (1 to 1000, default 100). Anything
/// else is refused (400), as openapi.json describes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordParams {
    url: Option<String>,
    prefix: Option<String>,
    tag: Option<String>,
    host: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// The query, normalised like the tasks it must match; scope-checked against the token.
fn record_query(p: &RecordParams, hosts: &[String], admin: bool) -> Result<RecordQuery, Error> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| Error::Invalid(format!("{what}: {e}"));
    let keys = [("url", &p.url), ("prefix", &p.prefix), ("tag", &p.tag), ("host", &p.host)];
    let given = keys.iter().filter(|(_, v)| v.is_some()).count();
    if given != 1 {
        return Err(Error::Invalid("give exactly one of url=, prefix=, tag=, host=".into()));
    }
    if let Some((key, _)) = keys.iter().find(|(_, v)| v.as_deref() == Some("")) {
        return Err(Error::Invalid(format!("{key}= is empty: give the {key} whose records to show")));
    }
    let (query, host) = if let Some(url) = &p.url {
        let url = cache_url(url).map_err(|e| invalid("url", &e))?;
        let host = url.host().to_owned();
        (RecordQuery::Url { url: url.into_string(), host: host.clone() }, Some(host))
    } else if let Some(prefix) = &p.prefix {
        let prefix = cache_prefix(prefix).map_err(|e| invalid("prefix", &e))?;
        let host = prefix.host().to_owned();
        (RecordQuery::Prefix(prefix.into_string()), Some(host))
    } else if let Some(host) = &p.host {
        let host = edgepurge_url::normalize_host(host).map_err(|e| invalid("host", &e))?;
        (RecordQuery::Host(host.clone()), Some(host))
    } else {
        let tag = p.tag.clone().unwrap_or_default();
        if !admin {
            return Err(Error::Forbidden("tag records span every host: they need an admin token".into()));
        }
        (RecordQuery::Tag(tag), None)
    };
    if let Some(host) = host {
        if !admin && !host_allowed(hosts, &host) {
            return Err(Error::Forbidden(format!("host `{host}` is outside this token's hosts")));
        }
    }
    Ok(query)
}

/// The edges that count for a batch accepted at `at` (as `RecordStore::progress` counts them).
fn counted(edges: &[Edge], at: u64) -> impl Iterator<Item = &Edge> {
    edges.iter().filter(move |e| e.registered_at <= at && e.decommissioned_at.is_none())
}

/// `GET /v1/records`.
pub async fn records<S: ControlStore>(
    State(state): State<Arc<AppState<S>>>,
    // The token first: a request without one is told so (401) whatever its query.
    Authenticated(token): Authenticated,
    Checked(Query(params)): Checked<Query<RecordParams>>,
) -> Result<Response, Error> {
    let query = record_query(&params, &token.hosts, token.admin)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::Invalid(format!(
            "limit={limit}: give 1 to {MAX_PAGE} entries per page, and follow `next` for more"
        )));
    }
    let page = state.store.records(query, params.after.map(RecordCursor), limit).await?;
    let edges = state.store.edges().await?;
    let marks: HashMap<(String, u32), u64> =
        state.store.watermarks().await?.into_iter().map(|w| ((w.edge, w.queue), w.applied)).collect();
    let events = state.store.edge_events(None, 1000).await?;
    // Newest first, so the first match is the latest event since the request was accepted.
    let note = |edge: &str, since: u64| {
        events
            .iter()
            .find(|ev| ev.edge == edge && ev.at >= since)
            .map(|ev| format!("{}: {}", ev.kind.as_str(), ev.message))
    };
    let entries = page
        .entries
        .iter()
        .map(|e| {
            let on_edges = counted(&edges, e.accepted_at)
                .map(|edge| {
                    let applied = marks.get(&(edge.name.clone(), e.carried_by.queue)).copied().unwrap_or(0);
                    EdgeApplied {
                        edge: edge.name.clone(),
                        applied: applied >= e.carried_by.offset,
                        note: note(&edge.name, e.accepted_at),
                    }
                })
                .collect();
            RecordEntry {
                batch: e.batch,
                token: e.token_name.clone(),
                accepted_at: rfc3339(e.accepted_at),
                kind: e.kind,
                target: e.target.clone(),
                soft: e.soft,
                host: e.host.clone(),
                queue: e.carried_by.queue,
                offset: e.carried_by.offset,
                folded: e.folded,
                edges: on_edges,
            }
        })
        .collect();
    Ok(Json(RecordPage { entries, next: page.next.map(|c| c.0) }).into_response())
}

/// `GET /v1/edges`: every registered edge, its watermark and lag per queue, when it last
/// reported, whether its queue stream is open now (with its latest `received`/`applied` per queue
/// and last ack since this node started) and the last policy load it reported.
pub async fn edges<S: ControlStore>(
    State(state): State<Arc<AppState<S>>>,
    _: Authenticated,
) -> Result<Response, Error> {
    let infos = state.store.queue_info().await?;
    let marks = state.store.watermarks().await?;
    // Newest first across every edge; a few per edge are shown, so a page of them is plenty.
    let events = state.store.edge_events(None, 1000).await?;
    let live = state.queue.live_edges();
    let edges = state
        .store
        .edges()
        .await?
        .into_iter()
        .map(|edge| {
            let mine: Vec<_> = marks.iter().filter(|w| w.edge == edge.name).collect();
            let stream = live.get(&edge.name);
            let queues = infos
                .iter()
                .map(|q| {
                    let applied = mine.iter().find(|w| w.queue == q.queue).map_or(0, |w| w.applied);
                    let mark = |marks: &[(u32, u64)]| marks.iter().find(|(queue, _)| *queue == q.queue).map(|m| m.1);
                    EdgeQueue {
                        queue: q.queue,
                        applied,
                        lag: q.next.saturating_sub(1).saturating_sub(applied),
                        stream_received: stream.and_then(|s| mark(&s.received)),
                        stream_applied: stream.and_then(|s| mark(&s.applied)),
                    }
                })
                .collect();
            let last_seen = mine.iter().map(|w| w.updated_at).chain(edge.last_seen).max();
            let policy = edge.policy.as_ref().map(|(p, at)| EdgePolicyReport {
                name: p.name.clone(),
                version: p.version.clone(),
                sha256: p.sha256.clone(),
                error: p.error.clone(),
                reported_at: rfc3339(*at),
            });
            EdgeState {
                name: edge.name.clone(),
                registered_at: rfc3339(edge.registered_at),
                decommissioned_at: edge.decommissioned_at.map(rfc3339),
                last_seen: last_seen.map(rfc3339),
                connected: stream.is_some_and(|s| s.connected),
                connected_at: stream.map(|s| rfc3339(s.connected_at)),
                peer: stream.map(|s| s.peer.to_string()),
                last_ack: stream.and_then(|s| s.last_ack_at).map(rfc3339),
                policy,
                queues,
                events: events
                    .iter()
                    .filter(|e| e.edge == edge.name)
                    .take(EVENTS_SHOWN)
                    .map(|e| EdgeEventReport {
                        at: rfc3339(e.at),
                        kind: e.kind.as_str().into(),
                        message: e.message.clone(),
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Json(EdgeList { edges }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_queries_are_normalised_and_scoped() {
        let hosts = vec!["a.com".to_owned()];
        let p = RecordParams { url: Some("HTTPS://A.com/x#f".into()), ..Default::default() };
        assert_eq!(
            record_query(&p, &hosts, false).unwrap(),
            RecordQuery::Url { url: "http://a.com/x".into(), host: "a.com".into() }
        );
        let p = RecordParams { host: Some("b.com".into()), ..Default::default() };
        assert!(matches!(record_query(&p, &hosts, false), Err(Error::Forbidden(_))));
        assert!(record_query(&p, &hosts, true).is_ok());
        let p = RecordParams { tag: Some("t".into()), ..Default::default() };
        assert!(matches!(record_query(&p, &hosts, false), Err(Error::Forbidden(_))));
        let two = RecordParams { url: Some("http://a.com/".into()), host: Some("a.com".into()), ..Default::default() };
        assert!(matches!(record_query(&two, &hosts, false), Err(Error::Invalid(_))));
        for empty in [
            RecordParams { tag: Some(String::new()), ..Default::default() },
            RecordParams { prefix: Some(String::new()), ..Default::default() },
        ] {
            let e = record_query(&empty, &hosts, true).unwrap_err();
            assert!(matches!(&e, Error::Invalid(m) if m.contains("is empty")), "{e}");
        }
    }
}
