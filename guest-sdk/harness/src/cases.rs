//! Declarative test cases (`cases.toml`) for a policy, as run by `edgepurge policy test`.
//!
//! ```toml
//! [config]                     # optional: the policy's configuration (also fed to defaults)
//! default-ttl-secs = "3600"
//!
//! [limits]                     # optional: override the production limits
//! deadline-ms = 10
//! memory-mib = 32
//!
//! [[case]]
//! name = "a prefix purge stays a prefix"
//! hook = "scope-purge"         # select-queue | scope-purge | cache-rules | cache-key
//! expect = { actions = [{ scope = { prefix = "https://a.com/img/" }, mode = "hard" }] }
//! # or: expect-fallback = "not-declared" | "trap" | "deadline" | "memory" | "invalid-return"
//! [case.input]                 # select-queue: tasks, queues, now-ms; scope-purge: task;
//! task = { kind = "prefix", target = "https://a.com/img/", host = "a.com" }
//!                              # cache-rules: request, response; cache-key: request
//! ```
//!
//! `expect` is what the *policy* returns (a fallback never passes an `expect` case); for
//! `cache-key`, `expect = ""` means the policy returns `None`.

use crate::{Error, Harness, Result};
use edgepurge_policy_runtime::policy::PolicyOptions;
use edgepurge_policy_runtime::{DecisionSource, FailureKind, Limits, Outcome};
use edgepurge_sdk::{CacheDecision, Hook, PurgePlan, QueueState, RequestMeta, ResponseMeta, Task};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A parsed `cases.toml`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CaseFile {
    /// Configuration given to the policy.
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
    /// Limit overrides.
    #[serde(default)]
    pub limits: CaseLimits,
    /// The cases, in order.
    #[serde(rename = "case", default)]
    pub cases: Vec<Case>,
}

/// Limit overrides for a case file.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CaseLimits {
    /// Deadline per call in milliseconds.
    pub deadline_ms: Option<u64>,
    /// Memory cap in MiB.
    pub memory_mib: Option<usize>,
}

/// One case.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Case {
    /// What the case checks.
    pub name: String,
    /// The hook to call.
    pub hook: Hook,
    /// The hook's input (fields by hook; see the module docs).
    #[serde(default)]
    pub input: toml::Table,
    /// The policy's expected answer.
    pub expect: Option<toml::Value>,
    /// The expected fallback instead: `not-declared` or a failure kind.
    pub expect_fallback: Option<String>,
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// The case's name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Why it failed, with a diff of expected and actual output when they differ.
    pub failure: Option<String>,
    /// What the policy logged during the case.
    pub log: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct SelectInput {
    #[serde(default)]
    tasks: Vec<Task>,
    #[serde(default)]
    queues: Vec<QueueState>,
    #[serde(default)]
    now_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskInput {
    #[serde(default)]
    task: Task,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FillInput {
    #[serde(default)]
    request: RequestMeta,
    #[serde(default)]
    response: ResponseMeta,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestInput {
    #[serde(default)]
    request: RequestMeta,
}

impl CaseFile {
    /// Parses a cases file's text; `path` is used in messages.
    pub fn parse(text: &str, path: &str) -> Result<CaseFile> {
        let file: CaseFile =
            toml::from_str(text).map_err(|e| Error::Cases { path: path.into(), message: e.to_string() })?;
        for case in &file.cases {
            match (&case.expect, &case.expect_fallback) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err(Error::Cases {
                        path: path.into(),
                        message: format!("case `{}`: give exactly one of `expect` and `expect-fallback`", case.name),
                    })
                }
            }
            if let Some(f) = &case.expect_fallback {
                if f != "not-declared" && FailureKind::from_name(f).is_none() {
                    return Err(Error::Cases {
                        path: path.into(),
                        message: format!("case `{}`: unknown expect-fallback `{f}`; use not-declared, trap, deadline, memory, invalid-return or instantiate", case.name),
                    });
                }
            }
        }
        Ok(file)
    }

    /// Reads and parses a cases file.
    pub fn read(path: &Path) -> Result<CaseFile> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.display().to_string(), source })?;
        CaseFile::parse(&text, &path.display().to_string())
    }

    /// The policy options this file asks for: its config and limits on top of the defaults.
    pub fn options(&self) -> PolicyOptions {
        let config = self
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        let mut limits = Limits::default();
        if let Some(ms) = self.limits.deadline_ms {
            limits.deadline = Duration::from_millis(ms);
        }
        if let Some(mib) = self.limits.memory_mib {
            limits.memory_bytes = mib << 20;
        }
        PolicyOptions { config, limits, log_sink: None }
    }
}

/// Loads `wasm` with the file's options and runs every case in order.
pub async fn run_file(wasm: &[u8], file: &CaseFile) -> Result<Vec<CaseReport>> {
    let harness = Harness::load(wasm, file.options()).await?;
    let mut reports = Vec::new();
    for case in &file.cases {
        harness.take_log();
        let failure = run_case(&harness, case).await.err();
        reports.push(CaseReport {
            name: case.name.clone(),
            passed: failure.is_none(),
            failure,
            log: harness.take_log(),
        });
    }
    Ok(reports)
}

fn parse<T: DeserializeOwned>(value: toml::Value, what: &str) -> std::result::Result<T, String> {
    value.try_into().map_err(|e| format!("invalid {what}: {e}"))
}

/// Runs one case; `Err` says why it failed.
pub async fn run_case(harness: &Harness, case: &Case) -> std::result::Result<(), String> {
    let input = toml::Value::Table(case.input.clone());
    let p = harness.policy();
    match case.hook {
        Hook::SelectQueue => {
            let i: SelectInput = parse(input, "input")?;
            judge(case, p.select_queue(&i.tasks, &i.queues, i.now_ms).await, |v| parse::<Vec<u32>>(v, "expect"))
        }
        Hook::ScopePurge => {
            let i: TaskInput = parse(input, "input")?;
            judge(case, p.scope_purge(&i.task).await, |v| parse::<PurgePlan>(v, "expect"))
        }
        Hook::CacheRules => {
            let i: FillInput = parse(input, "input")?;
            judge(case, p.cache_rules(&i.request, &i.response).await, |v| parse::<CacheDecision>(v, "expect"))
        }
        Hook::CacheKey => {
            let i: RequestInput = parse(input, "input")?;
            judge(case, p.cache_key(&i.request).await, |v| {
                parse::<String>(v, "expect").map(|s| (!s.is_empty()).then_some(s))
            })
        }
    }
}

fn judge<T: PartialEq + Serialize>(
    case: &Case,
    outcome: Outcome<T>,
    expected: impl FnOnce(toml::Value) -> std::result::Result<T, String>,
) -> std::result::Result<(), String> {
    if let Some(want) = &case.expect_fallback {
        let got = match &outcome.source {
            DecisionSource::Policy => "the policy's own answer".to_owned(),
            DecisionSource::NotDeclared => "not-declared".to_owned(),
            DecisionSource::Fallback { kind, .. } => kind.name().to_owned(),
        };
        let matches = match &outcome.source {
            DecisionSource::NotDeclared => want == "not-declared",
            DecisionSource::Fallback { kind, .. } => kind.name() == want,
            DecisionSource::Policy => false,
        };
        return if matches { Ok(()) } else { Err(format!("expected fallback `{want}`, got {got}")) };
    }
    let want = expected(case.expect.clone().unwrap_or(toml::Value::Table(Default::default())))?;
    match outcome.source {
        DecisionSource::NotDeclared => {
            Err(format!("the policy does not declare `{}`; the built-in default answered", case.hook))
        }
        DecisionSource::Fallback { kind, detail } => Err(format!("the call failed ({kind}): {detail}")),
        DecisionSource::Policy if outcome.value == want => Ok(()),
        DecisionSource::Policy => {
            Err(format!("output differs (- expected, + actual):\n{}", diff(&want, &outcome.value)))
        }
    }
}

/// A line diff of two values rendered as pretty JSON.
pub fn diff<T: Serialize>(expected: &T, actual: &T) -> String {
    let render = |v: &T| serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("<unprintable: {e}>")) + "\n";
    let (a, b) = (render(expected), render(actual));
    similar::TextDiff::from_lines(&a, &b).unified_diff().context_radius(3).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_needs_exactly_one_expectation() {
        let text = "[[case]]\nname = \"x\"\nhook = \"cache-key\"\n";
        assert!(CaseFile::parse(text, "t.toml").unwrap_err().to_string().contains("exactly one"));
        let text = "[[case]]\nname = \"x\"\nhook = \"cache-key\"\nexpect-fallback = \"oops\"\n";
        assert!(CaseFile::parse(text, "t.toml").unwrap_err().to_string().contains("unknown expect-fallback"));
    }

    #[test]
    fn typos_are_reported_with_their_place() {
        let text = "[[case]]\nname = \"x\"\nhook = \"select-queue\"\nexpectt = [1]\n";
        let err = CaseFile::parse(text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("expectt"), "{err}");
    }

    #[test]
    fn numbers_in_config_become_strings() {
        let file = CaseFile::parse("[config]\ndefault-ttl-secs = 60\nmode = \"x\"\n", "t.toml").unwrap();
        let options = file.options();
        assert_eq!(options.config["default-ttl-secs"], "60");
        assert_eq!(options.config["mode"], "x");
    }

    #[test]
    fn diffs_show_both_sides() {
        let d = diff(&vec![1, 2], &vec![1, 3]);
        assert!(d.contains("-  2") && d.contains("+  3"), "{d}");
    }
}
