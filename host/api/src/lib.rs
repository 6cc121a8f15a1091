//! # edgepurge-api — the control API's JSON documents, defined once
//!
//! Every JSON body the control role answers with is a struct here (serde `Serialize` and
//! `Deserialize`): the control role builds these to answer, `edgepurge`'s client commands parse
//! them, and a test in `host/control` compares each one field by field with its schema in
//! `host/control/openapi.json`. A field renamed here is renamed for all three, and one renamed
//! in only one place fails to compile or fails that test instead of showing `0`.
//!
//! | route | document |
//! |---|---|
//! | `POST /v1/purges` (202) | [`Accepted`] |
//! | `GET /v1/purges/{id}`, and each `progress` event of `GET /v1/purges/{id}/events` | [`BatchStatus`] |
//! | `GET /v1/queues` | [`QueueList`] |
//! | `GET /v1/records` | [`RecordPage`] |
//! | `GET /v1/edges` | [`EdgeList`] |
//! | `DELETE /v1/edges/{name}` | [`Decommissioned`] |
//! | every refusal and error (4xx, 5xx; `/readyz`'s 503 excepted) | [`ErrorBody`] |
//! | `/healthz`, `/readyz` | [`Liveness`], [`Readiness`] |
//!
//! Conventions of every document: times are RFC 3339 UTC strings with milliseconds
//! (`2026-11-22T01:02:03.456Z`) unless the field's name ends in `_ms`; an `Option` field is
//! written as `null` when it has no value (the key stays), except the few marked "absent when
//! …", which are left out. Readers ignore fields they do not know, so a newer control role can
//! add fields without breaking an older CLI.

#![deny(missing_docs)]

mod purge;
mod views;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use edgepurge_sdk::TaskKind;
pub use purge::{Accepted, BatchSpan, BatchState, BatchStatus, EdgeProgress, FailureReport};
pub use views::{
    Decommissioned, EdgeApplied, EdgeEventReport, EdgeList, EdgePolicyReport, EdgeQueue, EdgeState, QueueList,
    QueueState, RecordEntry, RecordPage,
};

/// A document of the API: a JSON body with a schema of its own in the OpenAPI document.
pub trait Document: Serialize + DeserializeOwned {
    /// Its schema's name under `components.schemas` of `host/control/openapi.json`.
    const SCHEMA: &'static str;

    /// A value with every field set at every depth (no `None`, no empty list), so that its JSON
    /// shows every field the document can have: the OpenAPI check compares it with the schema.
    fn example() -> Self;
}

/// The body of every error answer (4xx, 5xx), `application/json`: the handlers' own refusals,
/// axum's extractor rejections (query string, path, body), unknown paths and methods alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, naming the offending item (a URL, a header, a limit) and what to do.
    pub error: String,
}

impl Document for ErrorBody {
    const SCHEMA: &'static str = "ErrorBody";

    fn example() -> Self {
        ErrorBody { error: "host `b.com` is outside this token's hosts".into() }
    }
}

/// `GET /healthz`: the process serves HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Liveness {
    /// Always `ok` (a process that cannot answer does not answer at all).
    pub status: String,
}

impl Liveness {
    /// The one answer: `{"status": "ok"}`.
    pub fn ok() -> Self {
        Liveness { status: "ok".into() }
    }
}

impl Document for Liveness {
    const SCHEMA: &'static str = "Liveness";

    fn example() -> Self {
        Liveness::ok()
    }
}

/// `GET /readyz`: whether the store answers a read and takes a write (200 `ready`, else 503
/// `not ready`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// Whether this node can take purges now.
    pub status: ReadyState,
    /// Why not: whether reading or writing failed, and the store's error. Absent when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The two answers of `GET /readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadyState {
    /// `ready`: the store answered a read and took a probe write.
    #[serde(rename = "ready")]
    Ready,
    /// `not ready`: the store could not be read or written (see `error`).
    #[serde(rename = "not ready")]
    NotReady,
}

impl Document for Readiness {
    const SCHEMA: &'static str = "Readiness";

    fn example() -> Self {
        Readiness {
            status: ReadyState::NotReady,
            error: Some("the store cannot be written: database is locked".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// Serialises `doc`, checks it reads back equal, and returns its JSON.
    pub(crate) fn round_trip<T: Document + PartialEq + std::fmt::Debug>(doc: &T) -> Value {
        let value = serde_json::to_value(doc).unwrap();
        let back: T = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(&back, doc, "{value}");
        value
    }

    #[test]
    fn health_documents_keep_their_shapes() {
        assert_eq!(round_trip(&Liveness::ok()), json!({"status": "ok"}));
        let ready = Readiness { status: ReadyState::Ready, error: None };
        assert_eq!(round_trip(&ready), json!({"status": "ready"}));
        assert_eq!(
            round_trip(&Readiness::example()),
            json!({"status": "not ready", "error": "the store cannot be written: database is locked"})
        );
        assert_eq!(round_trip(&ErrorBody::example())["error"], "host `b.com` is outside this token's hosts");
    }
}
