//! A validator for the subset of JSON Schema (2020-12, as OpenAPI 3.1 uses it) that
//! `openapi.json` uses, for the contract test: `$ref`, `type` (one or a list), `enum`, `const`,
//! `properties`, `required`, `additionalProperties: false`, `items`, `minItems`, `maxItems`,
//! `minLength`, `maxLength`, `minimum`, `maximum`, `anyOf`, and the `date-time` format. A keyword
//! outside the subset is reported as a problem, so a schema never silently means less here than
//! it says.
//!
//! In strict mode (for answers) an object may hold only the properties its schema lists: an
//! undocumented field of an answer is a problem too.

use serde_json::Value;

/// Keywords that describe without constraining.
const ANNOTATIONS: [&str; 5] = ["description", "default", "example", "examples", "title"];

/// Validates values against the schemas of one OpenAPI document (`$ref`s resolve in it).
pub struct Validator<'d> {
    doc: &'d Value,
    strict: bool,
}

impl<'d> Validator<'d> {
    /// For requests: what the schema allows.
    pub fn new(doc: &'d Value) -> Self {
        Validator { doc, strict: false }
    }

    /// For answers: what the schema allows, and no field it does not list.
    pub fn strict(doc: &'d Value) -> Self {
        Validator { doc, strict: true }
    }

    /// Every way `value` breaks `schema` (empty: it is valid).
    pub fn errors(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.check(schema, value, "", &mut out);
        out
    }

    /// `schema`, or what its `$ref` points to (`null` when it points nowhere).
    pub fn resolve<'s>(&self, schema: &'s Value) -> &'s Value
    where
        'd: 's,
    {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => r.strip_prefix('#').and_then(|p| self.doc.pointer(p)).unwrap_or(&Value::Null),
            None => schema,
        }
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let Some(keywords) = schema.as_object() else {
            out.push(format!("{at}: the schema is not an object ({schema})"));
            return;
        };
        let here = if at.is_empty() { "the value" } else { at };
        for (key, rule) in keywords {
            match key.as_str() {
                "type" => {
                    let types: Vec<&str> = match rule {
                        Value::String(t) => vec![t.as_str()],
                        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                        _ => Vec::new(),
                    };
                    if !types.iter().any(|t| is_type(value, t)) {
                        out.push(format!("{here}: {value} is not of type {types:?}"));
                        // The other keywords assume the type.
                        return;
                    }
                }
                "enum" if !rule.as_array().is_some_and(|e| e.contains(value)) => {
                    out.push(format!("{here}: {value} is not one of {rule}"))
                }
                "const" if rule != value => out.push(format!("{here}: {value} is not {rule}")),
                "properties" | "additionalProperties" | "required" => {}
                "items" => {
                    for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                        self.check(rule, item, &format!("{at}/{i}"), out);
                    }
                }
                "minItems" | "maxItems" => {
                    if let (Some(items), Some(n)) = (value.as_array(), rule.as_u64()) {
                        let len = items.len() as u64;
                        if (key == "minItems" && len < n) || (key == "maxItems" && len > n) {
                            out.push(format!("{here}: {len} items, {key} is {n}"));
                        }
                    }
                }
                "minLength" | "maxLength" => {
                    if let (Some(s), Some(n)) = (value.as_str(), rule.as_u64()) {
                        let len = s.chars().count() as u64;
                        if (key == "minLength" && len < n) || (key == "maxLength" && len > n) {
                            out.push(format!("{here}: {len} characters, {key} is {n}"));
                        }
                    }
                }
                "minimum" | "maximum" => {
                    if let (Some(v), Some(n)) = (value.as_f64(), rule.as_f64()) {
                        if (key == "minimum" && v < n) || (key == "maximum" && v > n) {
                            out.push(format!("{here}: {value}, {key} is {rule}"));
                        }
                    }
                }
                "anyOf" => {
                    let branches = rule.as_array().map(Vec::as_slice).unwrap_or_default();
                    if !branches.iter().any(|b| self.errors(b, value).is_empty()) {
                        out.push(format!("{here}: matches none of anyOf {rule}"));
                    }
                }
                "format" => {
                    if let (Some("date-time"), Some(s)) = (rule.as_str(), value.as_str()) {
                        if !is_date_time(s) {
                            out.push(format!("{here}: `{s}` is not an RFC 3339 date-time"));
                        }
                    }
                }
                "$ref" => {}
                k if ANNOTATIONS.contains(&k) || k.starts_with("x-") => {}
                k if ["enum", "const"].contains(&k) => {}
                other => out.push(format!("{here}: the schema uses `{other}`, which this validator does not know")),
            }
        }
        if let Some(fields) = value.as_object() {
            self.check_object(keywords, fields, at, out);
        }
    }

    fn check_object(
        &self,
        keywords: &serde_json::Map<String, Value>,
        fields: &serde_json::Map<String, Value>,
        at: &str,
        out: &mut Vec<String>,
    ) {
        let here = if at.is_empty() { "the value" } else { at };
        let empty = serde_json::Map::new();
        let properties = keywords.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        for name in keywords.get("required").and_then(Value::as_array).into_iter().flatten() {
            if let Some(name) = name.as_str().filter(|n| !fields.contains_key(*n)) {
                out.push(format!("{here}: required `{name}` is missing"));
            }
        }
        for (name, field) in fields {
            match properties.get(name) {
                Some(schema) => self.check(schema, field, &format!("{at}/{name}"), out),
                None if keywords.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    out.push(format!("{here}: `{name}` is not allowed (additionalProperties: false)"))
                }
                // Strict: the object's own schema (one with a type) lists every field it has.
                None if self.strict && keywords.contains_key("type") && keywords.contains_key("properties") => {
                    out.push(format!("{here}: `{name}` is in the answer but not in the schema"))
                }
                None => {}
            }
        }
    }
}

/// Whether `value` is of JSON Schema type `t`.
fn is_type(value: &Value, t: &str) -> bool {
    match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let fixed = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !fixed {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    matches!(rest, "Z" | "z")
        || (rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':'
            && rest.bytes().enumerate().all(|(i, c)| i == 0 || i == 3 || c.is_ascii_digit()))
}

/// A query string, header or path value read as the schema's type says (`"5"` as 5 for an
/// integer, `"true"` as `true` for a boolean); anything else stays a string, so that it fails
/// the type check the way the server refuses it.
pub fn typed(schema: &Value, raw: &str) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") => raw
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| raw.parse::<u64>().map(Value::from))
            .unwrap_or_else(|_| Value::from(raw)),
        Some("boolean") => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::from(raw),
        },
        _ => Value::from(raw),
    }
}

#[test]
fn the_validator_knows_its_subset() {
    use serde_json::json;
    let doc = json!({"components": {"schemas": {"Item": {"type": "string", "minLength": 1}}}});
    let v = Validator::new(&doc);
    let schema = json!({
        "type": "object", "additionalProperties": false, "required": ["a"],
        "properties": {"a": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}, "minItems": 1},
                       "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 10},
                       "at": {"type": "string", "format": "date-time"}, "k": {"enum": ["x", "y"]}},
        "anyOf": [{"required": ["a"]}, {"properties": {"n": {"const": 5}}}]
    });
    assert!(v.errors(&schema, &json!({"a": ["x"], "n": null, "at": "2026-11-22T01:02:03.456Z", "k": "x"})).is_empty());
    let bad = v.errors(&schema, &json!({"a": [""], "n": 11, "at": "yesterday", "k": "z", "extra": 1}));
    let text = bad.join("\n");
    for needle in ["/a/0: 0 characters", "/n: 11, maximum", "not an RFC 3339", "not one of", "`extra` is not allowed"] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    assert!(v.errors(&schema, &json!({})).iter().any(|e| e.contains("required `a`")));
    assert!(v.errors(&json!({"pattern": "x"}), &json!("x"))[0].contains("does not know"));
    let strict = Validator::strict(&doc);
    let open = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    assert!(Validator::new(&doc).errors(&open, &json!({"b": 1})).is_empty());
    assert!(strict.errors(&open, &json!({"b": 1}))[0].contains("not in the schema"));
    assert_eq!(typed(&json!({"type": "integer"}), "-1"), json!(-1));
    assert_eq!(typed(&json!({"type": "boolean"}), "-1"), json!("-1"));
    assert!(is_date_time("2026-11-22T01:02:03+01:00") && !is_date_time("2026-11-22 01:02:03Z"));
}
