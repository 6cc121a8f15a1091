//! Every shipped policy passes its own `cases.toml` through the harness library (the CLI runs
//! the same files in `make test`).

use edgepurge_harness::cases::{run_file, CaseFile};
use edgepurge_tests::{component, repo_root};

async fn passes_its_cases(name: &str) {
    let file = CaseFile::read(&repo_root().join("policies").join(name).join("cases.toml")).unwrap();
    assert!(file.cases.len() >= 5, "{name} ships at least five cases");
    let reports = run_file(&component("policies", name), &file).await.unwrap();
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{}: {}", r.name, r.failure.clone().unwrap_or_default()))
        .collect();
    assert!(failed.is_empty(), "{name}: {failed:#?}");
}

#[tokio::test]
async fn default_passes_its_cases() {
    passes_its_cases("default").await;
}

#[tokio::test]
async fn api_read_through_passes_its_cases() {
    passes_its_cases("api-read-through").await;
}

#[tokio::test]
async fn static_assets_passes_its_cases() {
    passes_its_cases("static-assets").await;
}

#[tokio::test]
async fn a_wrong_expectation_fails_with_a_diff_and_the_log() {
    let text = r#"
[[case]]
name = "deliberately wrong"
hook = "scope-purge"
expect = { actions = [{ scope = { prefix = "https://a.com/other/" }, mode = "hard" }] }
[case.input]
task = { kind = "prefix", target = "https://a.com/img/", host = "a.com" }

[[case]]
name = "fallback expected but the policy answered"
hook = "scope-purge"
expect-fallback = "trap"
[case.input]
task = { kind = "url", target = "https://a.com/x", host = "a.com" }
"#;
    let file = CaseFile::parse(text, "inline").unwrap();
    let reports = run_file(&component("policies", "default"), &file).await.unwrap();
    assert!(reports.iter().all(|r| !r.passed));
    let diff = reports[0].failure.as_deref().unwrap();
    assert!(diff.contains("-") && diff.contains("https://a.com/other/") && diff.contains("+"), "{diff}");
    assert!(reports[1].failure.as_deref().unwrap().contains("expected fallback `trap`"));
}
