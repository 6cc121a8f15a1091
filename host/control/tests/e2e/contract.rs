//! The contract test: requests generated from the served OpenAPI document, every answer checked
//! against it (issue 14, "the contract equals the behaviour").
//!
//! For each operation: the valid requests its examples make (each content type, each member of
//! `x-exactly-one-of`), then the same with one thing changed — no token, a bad token, a token
//! without the scope; each parameter set to values around its schema (empty strings, negative,
//! fractional and 65-bit numbers, not a boolean, each side of every bound, a path that is not
//! UTF-8), which must be accepted exactly when the schema allows them; the exclusive parameters
//! none or two; an empty body; bodies the server refuses (`{}`, only empty lists, empty strings,
//! wrong types, unknown fields, not JSON), which the schema must refuse too; a content type it
//! does not list. Each answer's status must be one the operation documents (2xx for a valid
//! request, 4xx for one the schema refuses), its required headers present and typed, its body of
//! a documented content type and valid against that status's schema, with no field the schema
//! does not list. `contract_cases` covers what takes a setup of its own: 429, 413, a store that
//! cannot be written (503), unknown paths and methods.

use std::time::Duration;

use edgepurge_control_store::RecordStore;
use serde_json::{json, Value};

use crate::schema::{typed, Validator};
use crate::support::{ControlTest, Resp, Running};

/// The methods an OpenAPI path item can have.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// How long one answer may take before the test calls it hung (a store lock waits 5 s).
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// One operation of the document.
pub struct Op<'d> {
    /// The path template, e.g. `/v1/purges/{id}`.
    pub path: &'d str,
    /// Lower-case, as in the document.
    pub method: &'d str,
    /// The operation object.
    pub op: &'d Value,
}

impl Op<'_> {
    /// `GET /v1/records`.
    pub fn name(&self) -> String {
        format!("{} {}", self.method.to_ascii_uppercase(), self.path)
    }

    /// Its parameters.
    pub fn params(&self) -> Vec<&Value> {
        self.op["parameters"].as_array().map(|p| p.iter().collect()).unwrap_or_default()
    }

    /// Whether it needs a token (its own `security`, else the document's).
    pub fn secured(&self, doc: &Value) -> bool {
        let security = self.op.get("security").unwrap_or(&doc["security"]);
        security.as_array().is_some_and(|s| !s.is_empty())
    }

    fn exclusive(&self) -> Vec<&str> {
        self.op["x-exactly-one-of"].as_array().into_iter().flatten().filter_map(Value::as_str).collect()
    }
}

/// Every operation of `doc`.
pub fn operations(doc: &Value) -> Vec<Op<'_>> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                ops.push(Op { path, method, op });
            }
        }
    }
    ops
}

/// What a case must get.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expect {
    /// A 2xx.
    Success,
    /// A 4xx.
    Refused,
    /// Exactly this status.
    Status(u16),
    /// Any status the operation documents.
    Documented,
}

/// One generated request.
#[derive(Debug, Clone)]
pub struct Case {
    pub what: String,
    pub path: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub expect: Expect,
}

impl Case {
    fn but(&self, what: impl Into<String>, expect: Expect) -> Case {
        Case { what: what.into(), expect, ..self.clone() }
    }

    fn set(list: &mut Vec<(String, String)>, name: &str, value: Option<&str>) {
        list.retain(|(n, _)| n != name);
        if let Some(value) = value {
            list.push((name.to_owned(), value.to_owned()));
        }
    }

    /// The request target: the path template with its parameters, and the query string.
    fn target(&self, template: &str) -> String {
        let mut path = template.to_owned();
        for (name, value) in &self.path {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        let query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        }
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A parameter's (or body's) example as the text a request carries.
fn text(example: &Value) -> String {
    match example {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The policy component a valid `PUT /v1/policy` sends, when `make policies` has built it.
fn component() -> Option<Vec<u8>> {
    std::fs::read(format!("{}/../../target/policies/default.wasm", env!("CARGO_MANIFEST_DIR"))).ok()
}

/// Values to try for a query, header or path parameter of `schema`: what its type commonly
/// meets (empty, negative, fractional, too large for 64 bits, not a boolean) and each side of
/// its bounds. Whether each must be accepted or refused is what the schema says of it.
fn probe_values(schema: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    match schema["type"].as_str() {
        Some("integer") => {
            out.extend(["x", "1.5", "-1", "0", "1000000", "99999999999999999999"].map(String::from));
            for bound in [schema["minimum"].as_i64(), schema["maximum"].as_i64()].into_iter().flatten() {
                out.extend([bound - 1, bound, bound + 1].map(|n| n.to_string()));
            }
        }
        Some("boolean") => out.extend(["true", "false", "1", "-1", "yes"].map(String::from)),
        Some("string") => {
            out.push(String::new());
            if let Some(max) = schema["maxLength"].as_u64() {
                out.extend(["k".repeat(max as usize), "k".repeat(max as usize + 1)]);
            }
        }
        _ => {}
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|v| seen.insert(v.clone()));
    out
}

/// JSON bodies `schema` (an object schema) refuses, made from `example` by one change each.
fn invalid_bodies(schema: &Value, example: &Value) -> Vec<(String, Value)> {
    let mut out = vec![
        ("an empty object".to_owned(), json!({})),
        ("null".to_owned(), Value::Null),
        ("a list".to_owned(), json!([])),
        ("an unknown field".to_owned(), json!({"unknown-field": 1})),
    ];
    let properties = schema["properties"].as_object().cloned().unwrap_or_default();
    for (name, property) in &properties {
        let mut changed = example.clone();
        let wrong = match property["type"].as_str() {
            Some("string") | Some("array") => json!(7),
            _ => json!("seven"),
        };
        changed[name] = wrong;
        out.push((format!("`{name}` of the wrong type"), changed));
        if property["type"] == "array" {
            out.push((format!("only an empty `{name}`"), json!({ name.clone(): [] })));
            if property["items"]["minLength"].as_u64().is_some_and(|n| n > 0) {
                let mut changed = example.clone();
                changed[name] = json!([""]);
                out.push((format!("an empty string in `{name}`"), changed));
            }
        }
        if property["type"] == "boolean" {
            out.push((format!("only `{name}: false`"), json!({ name.clone(): false })));
        }
    }
    out
}

/// The cases of `op`, with `admin` (every scope) and `user` (a token outside the examples' hosts).
pub fn cases(doc: &Value, op: &Op, admin: &str, user: &str, problems: &mut Vec<String>) -> Vec<Case> {
    let v = Validator::new(doc);
    let exclusive = op.exclusive();
    let mut base = Case {
        what: "the examples".into(),
        path: Vec::new(),
        query: Vec::new(),
        headers: Vec::new(),
        authorization: op.secured(doc).then(|| format!("Bearer {admin}")),
        content_type: None,
        body: Vec::new(),
        expect: Expect::Success,
    };
    for p in op.params() {
        let (name, example) = (p["name"].as_str().unwrap_or(""), &p["example"]);
        if example.is_null() {
            problems.push(format!("{}: parameter `{name}` has no example to build a request from", op.name()));
            continue;
        }
        match p["in"].as_str() {
            Some("path") => base.path.push((name.into(), text(example))),
            Some("query") if exclusive.contains(&name) && exclusive[0] != name => {}
            Some("query") => base.query.push((name.into(), text(example))),
            Some("header") => base.headers.push((name.into(), text(example))),
            other => problems.push(format!("{}: parameter `{name}` in {other:?}", op.name())),
        }
    }
    let mut out = Vec::new();
    let content = op.op["requestBody"]["content"].as_object();
    let mut bodies = Vec::new();
    for (media, entry) in content.into_iter().flatten() {
        if media == "*/*" {
            continue;
        }
        let body = if entry["schema"]["format"] == "binary" {
            match component() {
                Some(bytes) => bytes,
                None => {
                    println!(
                        "{}: skipping the {media} body: no target/policies/default.wasm (run `make policies`)",
                        op.name()
                    );
                    continue;
                }
            }
        } else if media == "application/json" {
            let example = &entry["example"];
            let errors = v.errors(&entry["schema"], example);
            if example.is_null() || !errors.is_empty() {
                problems.push(format!("{}: the {media} example is missing or invalid: {errors:?}", op.name()));
            }
            example.to_string().into_bytes()
        } else {
            text(&entry["example"]).into_bytes()
        };
        bodies.push((media.clone(), body));
    }
    if content.is_none() {
        out.push(base.clone());
    }
    for (media, body) in &bodies {
        out.push(Case {
            what: format!("the {media} example"),
            content_type: Some(media.clone()),
            body: body.clone(),
            ..base.clone()
        });
    }
    if let Some((media, body)) = bodies.first() {
        (base.content_type, base.body) = (Some(media.clone()), body.clone());
    }
    for name in exclusive.iter().skip(1) {
        let p = op.params().into_iter().find(|p| p["name"] == *name).expect("x-exactly-one-of names parameters");
        let mut case = base.but(format!("only `{name}`"), Expect::Success);
        Case::set(&mut case.query, exclusive[0], None);
        Case::set(&mut case.query, name, Some(&text(&p["example"])));
        out.push(case);
    }
    if !exclusive.is_empty() {
        let mut none = base.but(format!("none of {exclusive:?}"), Expect::Refused);
        none.query.retain(|(n, _)| !exclusive.contains(&n.as_str()));
        out.push(none);
        let mut two = base.but(format!("both `{}` and `{}`", exclusive[0], exclusive[1]), Expect::Refused);
        let p = op.params().into_iter().find(|p| p["name"] == exclusive[1]).expect("a parameter");
        Case::set(&mut two.query, exclusive[1], Some(&text(&p["example"])));
        out.push(two);
    }
    if op.secured(doc) {
        for (what, auth) in [
            ("no token", None),
            ("an unknown token", Some("Bearer ep_not_a_token".to_owned())),
            ("a Basic authorization", Some("Basic YWRtaW46YWRtaW4=".to_owned())),
            ("an empty bearer token", Some("Bearer ".to_owned())),
        ] {
            out.push(Case { authorization: auth, ..base.but(what, Expect::Status(401)) });
        }
        out.push(Case {
            authorization: Some(format!("Bearer {user}")),
            ..base.but("a token without the scope", Expect::Documented)
        });
    }
    for p in op.params() {
        let (name, schema, place) = (p["name"].as_str().unwrap_or(""), &p["schema"], p["in"].as_str());
        for value in probe_values(schema) {
            let valid = v.errors(schema, &typed(schema, &value)).is_empty();
            // A valid path parameter may still name nothing (404).
            let expect = match (valid, place) {
                (false, _) => Expect::Refused,
                (true, Some("path")) => Expect::Documented,
                (true, _) => Expect::Success,
            };
            let shown = if valid { "allows" } else { "refuses" };
            let mut case = base.but(format!("`{name}` = `{value}` (the schema {shown} it)"), expect);
            match place {
                Some("path") => Case::set(&mut case.path, name, Some(&value)),
                Some("header") => Case::set(&mut case.headers, name, Some(&value)),
                _ => {
                    // One of the exclusive parameters is tried on its own.
                    if exclusive.contains(&name) {
                        case.query.retain(|(n, _)| !exclusive.contains(&n.as_str()));
                    }
                    Case::set(&mut case.query, name, Some(&value))
                }
            }
            out.push(case);
        }
        if place == Some("path") {
            out.push({
                let mut case = base.but(format!("`{name}` not UTF-8"), Expect::Refused);
                Case::set(&mut case.path, name, Some("%FF"));
                case
            });
            let missing = if schema["type"] == "integer" { "999999" } else { "no-such-thing" };
            let mut case = base.but(format!("`{name}` naming nothing"), Expect::Status(404));
            Case::set(&mut case.path, name, Some(missing));
            out.push(case);
        }
    }
    if let Some(content) = content {
        if op.op["requestBody"]["required"] == true {
            out.push(Case { body: Vec::new(), ..base.but("an empty body", Expect::Refused) });
        }
        if !content.contains_key("*/*") {
            out.push(Case {
                content_type: Some("application/xml".into()),
                ..base.but("an unlisted content type", Expect::Status(415))
            });
        }
        if let Some(json) = content.get("application/json") {
            let schema = v.resolve(&json["schema"]);
            out.push(Case { body: b"{\"urls\": [".to_vec(), ..base.but("a body that is not JSON", Expect::Refused) });
            for (what, body) in invalid_bodies(schema, &json["example"]) {
                if v.errors(schema, &body).is_empty() {
                    problems.push(format!("{}: generated {what} ({body}) as invalid, the schema allows it", op.name()));
                }
                out.push(Case {
                    content_type: Some("application/json".into()),
                    body: body.to_string().into_bytes(),
                    ..base.but(format!("a JSON body with {what}"), Expect::Refused)
                });
            }
        }
    }
    out
}

/// Sends `case` to `op` on `c`.
pub async fn send(c: &Running, op: &Op<'_>, case: &Case) -> Option<Resp> {
    let mut headers: Vec<(&str, &str)> = case.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if let Some(auth) = &case.authorization {
        headers.push(("authorization", auth));
    }
    if let Some(ct) = &case.content_type {
        headers.push(("content-type", ct));
    }
    let method = op.method.to_ascii_uppercase();
    let target = case.target(op.path);
    let answer = c.send(&method, &target, None, &headers, case.body.clone());
    tokio::time::timeout(ANSWER_WITHIN, answer).await.ok()
}

/// Checks `resp` (to `case`, or to `what` with any documented status when `case` is `None`)
/// against the operation's documented answers; returns the problems found.
pub fn check(doc: &Value, op: &Op, what: &str, expect: Expect, resp: Option<&Resp>) -> Vec<String> {
    let name = format!("{} with {what}", op.name());
    let Some(resp) = resp else { return vec![format!("{name}: no answer within {ANSWER_WITHIN:?}")] };
    let strict = Validator::strict(doc);
    let mut problems = Vec::new();
    let status = resp.status;
    let expected = match expect {
        Expect::Success => (200..300).contains(&status),
        Expect::Refused => (400..500).contains(&status),
        Expect::Status(s) => status == s,
        Expect::Documented => true,
    };
    let shown = String::from_utf8_lossy(&resp.body[..resp.body.len().min(300)]).into_owned();
    if !expected {
        problems.push(format!("{name}: expected {expect:?}, got {status}: {shown}"));
    }
    let Some(documented) = op.op["responses"].get(status.to_string()) else {
        problems.push(format!("{name}: answered {status}, which the operation does not document: {shown}"));
        return problems;
    };
    let documented = strict.resolve(documented);
    for (header, spec) in documented["headers"].as_object().into_iter().flatten() {
        let spec = strict.resolve(spec);
        match resp.headers.get(header.as_str()).and_then(|v| v.to_str().ok()) {
            None if spec["required"] == true => {
                problems.push(format!("{name}: {status} without its `{header}` header"))
            }
            None => {}
            Some(value) => {
                for e in strict.errors(&spec["schema"], &typed(&spec["schema"], value)) {
                    problems.push(format!("{name}: header `{header}: {value}`: {e}"));
                }
            }
        }
    }
    let Some(content) = documented["content"].as_object() else {
        if !resp.body.is_empty() {
            problems.push(format!("{name}: {status} has a body, the document describes none: {shown}"));
        }
        return problems;
    };
    let essence = resp.header("content-type").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let Some(media) = content.get(&essence).or_else(|| content.get("*/*")) else {
        problems.push(format!("{name}: {status} is `{essence}`, documented: {:?}: {shown}", content.keys()));
        return problems;
    };
    let mut bodies = Vec::new();
    if essence == "text/event-stream" {
        let text = String::from_utf8_lossy(&resp.body);
        let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).collect();
        if events.is_empty() {
            problems.push(format!("{name}: an event stream without events: {shown}"));
        }
        for data in events {
            bodies.push((&media["x-event-data"], serde_json::from_str(data).unwrap_or(Value::from(data))));
        }
    } else if essence == "application/json" {
        bodies.push((&media["schema"], serde_json::from_slice(&resp.body).unwrap_or(Value::from(shown.clone()))));
    } else {
        bodies.push((&media["schema"], Value::from(String::from_utf8_lossy(&resp.body).into_owned())));
    }
    for (schema, body) in bodies {
        for e in strict.errors(schema, &body) {
            problems.push(format!("{name}: {status} body: {e}"));
        }
    }
    problems
}

#[tokio::test]
async fn every_answer_to_requests_generated_from_the_document_is_one_it_describes() {
    let c = ControlTest::new().start().await.unwrap();
    let doc = c.send("GET", "/v1/openapi.json", None, &[], "").await.json;
    let admin = c.token("admin", &[], true).await;
    let user = c.token("user", &["user.example.net"], false).await;
    // Batch 1 (the `id` examples) and edge `edge-1` (the `name` example) exist.
    let submit = operations(&doc).into_iter().find(|o| o.path == "/v1/purges").expect("POST /v1/purges");
    let example = &submit.op["requestBody"]["content"]["application/json"]["example"];
    assert_eq!(c.purge(&admin, example.clone()).await.json["id"], 1);
    c.store.register_edge("edge-1", edgepurge_control::now_ms()).await.unwrap();

    let mut problems = Vec::new();
    let mut sent = 0;
    for op in operations(&doc) {
        for case in cases(&doc, &op, &admin, &user, &mut problems) {
            let resp = send(&c, &op, &case).await;
            problems.extend(check(&doc, &op, &case.what, case.expect, resp.as_ref()));
            sent += 1;
        }
    }
    println!("{sent} generated requests");
    assert!(sent > 100, "only {sent} requests generated");
    assert!(problems.is_empty(), "{} answers disagree with openapi.json:\n{}", problems.len(), problems.join("\n"));
    c.stop().await;
}
