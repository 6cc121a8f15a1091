//! The OpenAPI document (`GET /v1/openapi.json`) against the router and the typed documents:
//! every route of `api::routes` (the table the router is built from) is in it and nothing else
//! is; each route that answers with a document of `edgepurge-api` references that document's
//! schema; and each schema has exactly the document's fields, at every depth, with matching JSON
//! types and `null` allowed exactly where the type reads `null`.

use edgepurge_api::ErrorBody;
use edgepurge_control::api::{routes, Answers};
use edgepurge_control_store::SqliteStore;
use serde_json::Value;

use crate::support::ControlTest;

/// What a `$ref` to nothing resolves to.
static NULL: Value = Value::Null;

/// The methods an OpenAPI path item can have.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The served OpenAPI document.
async fn served_document() -> Value {
    let c = ControlTest::new().start().await.unwrap();
    let doc = c.send("GET", "/v1/openapi.json", None, &[], "").await;
    assert_eq!(doc.status, 200);
    c.stop().await;
    doc.json
}

#[tokio::test]
async fn every_route_of_the_router_and_only_those_are_in_the_openapi_document() {
    let doc = served_document().await;
    let paths = doc["paths"].as_object().unwrap();
    let table: Vec<(String, String)> =
        routes::<SqliteStore>().iter().map(|r| (r.path.to_owned(), r.method.as_str().to_ascii_lowercase())).collect();
    for (path, method) in &table {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} missing from openapi.json");
    }
    for (path, item) in paths {
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            assert!(
                table.iter().any(|(p, m)| p == path && m == method),
                "openapi.json lists {method} {path}, which the router does not serve"
            );
        }
    }
}

#[tokio::test]
async fn each_route_references_the_schema_of_the_document_it_answers_with() {
    let doc = served_document().await;
    for route in routes::<SqliteStore>() {
        let Some(answers) = route.answers else { continue };
        let operation = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
        let responses = operation["responses"].as_object().unwrap();
        let wanted = format!("#/components/schemas/{}", answers.schema);
        let success: Vec<&Value> = responses.iter().filter(|(code, _)| code.starts_with('2')).map(|(_, r)| r).collect();
        assert!(
            success.iter().any(|r| references(r, &wanted)),
            "{} {}: its success answer should reference {wanted} ({})",
            route.method,
            route.path,
            serde_json::to_string(&success).unwrap()
        );
    }
}

#[tokio::test]
async fn every_document_schema_has_exactly_the_fields_of_its_type() {
    let doc = served_document().await;
    let mut documents: Vec<Answers> = routes::<SqliteStore>().iter().filter_map(|r| r.answers).collect();
    documents.push(Answers::of::<ErrorBody>());
    let mut problems = Vec::new();
    for answers in documents {
        let example = (answers.example)();
        let schema = &doc["components"]["schemas"][answers.schema];
        assert!(schema.is_object(), "openapi.json has no schema `{}`", answers.schema);
        let mut check = Check { doc: &doc, answers, example: &example, problems: &mut problems };
        check.compare(&example, schema, "");
    }
    assert!(problems.is_empty(), "openapi.json disagrees with the documents:\n{}", problems.join("\n"));
}

#[test]
fn the_check_finds_a_missing_an_extra_and_a_mistyped_field() {
    let doc = serde_json::json!({"components": {"schemas": {"ErrorBody": {"type": "object", "properties": {
        "error": {"type": "integer"}, "code": {"type": "integer"}}}}}});
    let answers = Answers::of::<ErrorBody>();
    let example = serde_json::json!({"error": "x", "hint": "y"});
    let mut problems = Vec::new();
    let mut check = Check { doc: &doc, answers, example: &example, problems: &mut problems };
    check.compare(&example, &doc["components"]["schemas"]["ErrorBody"], "");
    let text = problems.join("\n");
    assert!(text.contains("ErrorBody.hint: a field of the type, missing from the schema"), "{text}");
    assert!(text.contains("ErrorBody.code: in the schema, not a field of the type"), "{text}");
    assert!(text.contains("ErrorBody.error: the type writes a string, the schema says"), "{text}");
}

/// Whether `value` holds `"$ref": wanted` at any depth.
fn references(value: &Value, wanted: &str) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| (k == "$ref" && v == wanted) || references(v, wanted)),
        Value::Array(items) => items.iter().any(|v| references(v, wanted)),
        _ => false,
    }
}

/// One document's example compared with its schema.
struct Check<'a> {
    doc: &'a Value,
    answers: Answers,
    example: &'a Value,
    problems: &'a mut Vec<String>,
}

impl<'a> Check<'a> {
    /// Compares `value` (at JSON pointer `at` in the example) with `schema`.
    fn compare(&mut self, value: &Value, schema: &Value, at: &str) {
        let schema = self.resolve(schema);
        let name = format!("{}{}", self.answers.schema, at.replace('/', "."));
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let in_enum = schema["enum"].as_array().map(|e| e.contains(value));
        if !at.is_empty() {
            // `null` allowed by the schema exactly where the type reads it (an `Option`).
            let mut nulled = self.example.clone();
            *nulled.pointer_mut(at).unwrap() = Value::Null;
            let reads_null = (self.answers.reads)(nulled);
            let allows_null =
                types.contains(&"null") || schema["enum"].as_array().is_some_and(|e| e.contains(&Value::Null));
            if reads_null != allows_null {
                self.problems.push(format!(
                    "{name}: the type {} null, the schema {}",
                    if reads_null { "reads" } else { "does not read" },
                    if allows_null { "allows it" } else { "does not" }
                ));
            }
        }
        let written = match value {
            Value::Null => {
                self.problems.push(format!("{name}: the example leaves it null; fill every field in `example()`"));
                return;
            }
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_f64() => "number",
            Value::Number(_) => "integer",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        match in_enum {
            Some(false) => self.problems.push(format!("{name}: {value} is not in the schema's enum")),
            Some(true) => {}
            None if !types.contains(&written) => {
                self.problems.push(format!("{name}: the type writes a {written}, the schema says {:?}", types))
            }
            None => {}
        }
        match value {
            Value::Object(fields) => {
                let empty = serde_json::Map::new();
                let properties = schema["properties"].as_object().unwrap_or(&empty);
                for key in fields.keys().filter(|k| !properties.contains_key(*k)) {
                    self.problems.push(format!("{name}.{key}: a field of the type, missing from the schema"));
                }
                for key in properties.keys().filter(|k| !fields.contains_key(*k)) {
                    self.problems.push(format!("{name}.{key}: in the schema, not a field of the type"));
                }
                for (key, field) in fields {
                    if let Some(property) = properties.get(key) {
                        self.compare(field, property, &format!("{at}/{key}"));
                    }
                }
            }
            Value::Array(items) => match items.first() {
                None => self.problems.push(format!("{name}: the example's list is empty; give it one item")),
                Some(item) => self.compare(item, &schema["items"], &format!("{at}/0")),
            },
            _ => {}
        }
    }

    /// `schema`, or what its `$ref` points to.
    fn resolve<'s>(&self, schema: &'s Value) -> &'s Value
    where
        'a: 's,
    {
        match schema["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
            Some(pointer) => self.doc.pointer(pointer).unwrap_or(&NULL),
            None => schema,
        }
    }
}
