//! The answers of the contract (`contract.rs`) that need a setup of their own, checked against
//! the served OpenAPI document the same way: 429 with its headers, 413 for each body limit, 503
//! from a store that reads but cannot be written (submissions and `/readyz`), and the JSON error
//! body of an unknown path (404) and of a method a path does not serve (405, with `Allow`); and
//! what the document itself must say: the statuses each kind of operation can answer, each
//! refusal with the JSON error body.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::contract::{check, operations, Expect, Op};
use crate::schema::Validator;
use crate::support::{ControlTest, Resp, Running};

/// The served document.
async fn document(c: &Running) -> Value {
    c.send("GET", "/v1/openapi.json", None, &[], "").await.json
}

fn op<'d>(doc: &'d Value, method: &str, path: &str) -> Op<'d> {
    operations(doc).into_iter().find(|o| o.method == method && o.path == path).expect("the operation")
}

/// `POST /v1/purges`'s example JSON body.
fn example(doc: &Value) -> Value {
    doc["paths"]["/v1/purges"]["post"]["requestBody"]["content"]["application/json"]["example"].clone()
}

fn assert_agrees(problems: Vec<String>) {
    assert!(problems.is_empty(), "answers disagree with openapi.json:\n{}", problems.join("\n"));
}

#[tokio::test]
async fn a_rate_limited_submission_answers_429_as_documented() {
    let c = ControlTest::new().rate_limit(1, 0.001).start().await.unwrap();
    let doc = document(&c).await;
    let t = c.token("t", &[], true).await;
    let submit = op(&doc, "post", "/v1/purges");
    let first = c.purge(&t, example(&doc)).await;
    let second = c.purge(&t, example(&doc)).await;
    let mut problems = check(&doc, &submit, "the first submission", Expect::Status(202), Some(&first));
    problems.extend(check(&doc, &submit, "a second one at once", Expect::Status(429), Some(&second)));
    assert_agrees(problems);
    assert!(second.error().contains("rate limit"), "{second:?}");
    c.stop().await;
}

#[tokio::test]
async fn bodies_over_each_limit_answer_413_as_documented() {
    let c = ControlTest::new().limits(|l| (l.max_json_bytes, l.max_bulk_bytes) = (64, 16)).start().await.unwrap();
    let doc = document(&c).await;
    let t = c.token("t", &[], true).await;
    let submit = op(&doc, "post", "/v1/purges");
    let mut problems = Vec::new();
    let json = c.purge(&t, example(&doc)).await;
    problems.extend(check(&doc, &submit, "JSON over max-json-bytes", Expect::Status(413), Some(&json)));
    assert!(json.error().contains("max-json-bytes"), "{json:?}");
    let bulk = c.bulk(&t, "text/plain", "https://www.example.com/a\nhttps://www.example.com/b\n").await;
    problems.extend(check(&doc, &submit, "text over max-bulk-bytes", Expect::Status(413), Some(&bulk)));
    assert!(bulk.error().contains("max-bulk-bytes"), "{bulk:?}");
    // The policy upload's limit is the policy runtime's 8 MiB.
    let big = vec![0u8; edgepurge_policy_runtime::Limits::default().max_component_bytes + 1];
    let policy = c.send("PUT", "/v1/policy", Some(&t), &[("content-type", "application/wasm")], big).await;
    problems.extend(check(
        &doc,
        &op(&doc, "put", "/v1/policy"),
        "a 8 MiB + 1 body",
        Expect::Status(413),
        Some(&policy),
    ));
    assert!(policy.error().contains("larger than"), "{policy:?}");
    assert_agrees(problems);
    c.stop().await;
}

#[tokio::test]
async fn a_store_that_reads_but_cannot_be_written_answers_503_and_readyz_says_so() {
    let c = ControlTest::new().start().await.unwrap();
    let doc = document(&c).await;
    let t = c.token("t", &[], true).await;
    let ready = op(&doc, "get", "/readyz");
    let before = c.send("GET", "/readyz", None, &[], "").await;
    let mut problems = check(&doc, &ready, "a healthy store", Expect::Status(200), Some(&before));

    // Another connection holds the database's write lock: reads go on, every write times out.
    let other = rusqlite::Connection::open(c.store.path()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    // `/readyz` may answer from the last probe for a while (a probe queued behind a write is
    // waited for 2 s at most): ask until it has seen the failure.
    let until_not_ready = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = c.send("GET", "/readyz", None, &[], "").await;
            if r.status != 200 || Instant::now() > deadline {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (submitted, not_ready) = tokio::join!(c.purge(&t, example(&doc)), until_not_ready);
    let submit = op(&doc, "post", "/v1/purges");
    problems.extend(check(&doc, &submit, "the store locked", Expect::Status(503), Some(&submitted)));
    problems.extend(check(&doc, &ready, "the store locked", Expect::Status(503), Some(&not_ready)));
    assert_eq!(not_ready.json["status"], "not ready", "{not_ready:?}");
    assert!(not_ready.json["error"].as_str().unwrap_or("").contains("cannot be written"), "{not_ready:?}");
    let r = c.send("GET", "/v1/queues", Some(&t), &[], "").await;
    assert_eq!(r.status, 200, "reads still answer: {r:?}");

    other.execute_batch("ROLLBACK").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let r = c.send("GET", "/readyz", None, &[], "").await;
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    problems.extend(check(&doc, &ready, "the lock released", Expect::Status(200), Some(&after)));
    assert_agrees(problems);
    c.stop().await;
}

/// Checks an answer that belongs to no operation: the JSON error body, and `Allow` on 405.
fn check_refusal(doc: &Value, what: &str, resp: &Resp, status: u16, allow: Option<&str>) -> Vec<String> {
    let mut problems = Vec::new();
    let body = Validator::strict(doc).errors(&json!({"$ref": "#/components/schemas/ErrorBody"}), &resp.json);
    if resp.status != status || resp.header("content-type") != "application/json" || !body.is_empty() {
        problems.push(format!("{what}: want {status} with the JSON error body, got {resp:?} ({body:?})"));
    }
    if let Some(allow) = allow {
        if resp.header("allow") != allow {
            problems.push(format!("{what}: Allow is `{}`, want `{allow}`", resp.header("allow")));
        }
    }
    problems
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_the_json_error_body() {
    let c = ControlTest::new().start().await.unwrap();
    let doc = document(&c).await;
    let t = c.token("t", &[], true).await;
    let mut problems = Vec::new();
    for path in ["/nowhere", "/v1/purges/1/nothing", "/v1"] {
        let r = c.send("GET", path, Some(&t), &[], "").await;
        problems.extend(check_refusal(&doc, &format!("GET {path}"), &r, 404, None));
        assert!(r.error().contains("/v1/openapi.json"), "{r:?}");
    }
    for (method, path, allow) in
        [("GET", "/v1/purges", "POST"), ("DELETE", "/v1/queues", "GET,HEAD"), ("POST", "/readyz", "GET,HEAD")]
    {
        let r = c.send(method, path, Some(&t), &[], "").await;
        problems.extend(check_refusal(&doc, &format!("{method} {path}"), &r, 405, Some(allow)));
        assert!(r.error().contains(method) && r.error().contains("Allow"), "{r:?}");
    }
    assert_agrees(problems);
    c.stop().await;
}

#[tokio::test]
async fn every_error_answer_is_documented_with_the_json_error_body() {
    let c = ControlTest::new().start().await.unwrap();
    let doc = c.send("GET", "/v1/openapi.json", None, &[], "").await.json;
    let v = Validator::new(&doc);
    let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
    let mut problems = Vec::new();
    for op in operations(&doc) {
        let responses = op.op["responses"].as_object().expect("responses");
        let mut wanted: Vec<&str> = Vec::new();
        if op.secured(&doc) {
            // The token is looked up in the store: every authenticated operation can say 401 and 503.
            wanted.extend(["401", "503"]);
        }
        if op.params().iter().any(|p| p["in"] == "path" || p["in"] == "query") {
            wanted.push("400");
        }
        if op.op.get("requestBody").is_some() {
            wanted.extend(["400", "413"]);
        }
        for code in wanted.into_iter().filter(|c| !responses.contains_key(*c)) {
            problems.push(format!("{}: does not document {code}", op.name()));
        }
        for (code, response) in responses.iter().filter(|(code, _)| !code.starts_with('2')) {
            let schema = &v.resolve(response)["content"]["application/json"]["schema"];
            let readiness = op.path == "/readyz" && schema["$ref"] == "#/components/schemas/Readiness";
            if *schema != error_body && !readiness {
                problems.push(format!("{} {code}: not the application/json ErrorBody: {response}", op.name()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    c.stop().await;
}
