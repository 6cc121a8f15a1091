//! The role crates' module order: ARCHITECTURE.md lists, for `host/edge` and `host/control`,
//! their modules from the top (servers, routes) down to the bottom (state, config), and no
//! module may use a module listed above it. This test reads that order from ARCHITECTURE.md and
//! every `crate::…` path in the crate's sources, so the picture cannot drift from the code.
//!
//! A directory (`consumer/`, `queue_server/`) is one module: its files may use each other; a
//! `<module>_tests.rs` beside `<module>.rs` belongs to that module.
//! `lib.rs` is the crate root and may use anything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use edgepurge_tests::repo_root;

/// The marker in ARCHITECTURE.md before the fenced block with a crate's order, e.g.
/// `<!-- layering: host/edge/src -->`.
const MARKER: &str = "<!-- layering: ";

/// The source directories whose order ARCHITECTURE.md must give.
const CHECKED: [&str; 2] = ["host/edge/src", "host/control/src"];

/// Every `(source dir, modules top first)` the document gives.
fn orders(doc: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim().strip_prefix(MARKER) else { continue };
        let dir = rest.trim_end_matches("-->").trim().to_owned();
        let mut modules = Vec::new();
        let mut inside = false;
        for line in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                if inside {
                    break;
                }
                inside = true;
                continue;
            }
            if let Some(first) = line.split_whitespace().next().filter(|_| inside) {
                modules.push(first.trim_end_matches('/').to_owned());
            }
        }
        out.push((dir, modules));
    }
    out
}

/// The crate's modules: its top-level files (without `lib.rs`/`main.rs`) and directories.
fn modules_of(src: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(src).unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display())) {
        let path = entry.expect("directory entry").path();
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        let tests_of_another = name.ends_with("_tests");
        if path.is_dir()
            || (path.extension().is_some_and(|e| e == "rs") && !tests_of_another && name != "lib" && name != "main")
        {
            out.insert(name);
        }
    }
    out
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The first path segments of every `crate::…` path in `source` (comments removed), with
/// grouped imports (`use crate::{a::X, b}`) expanded.
fn crate_uses(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .map(|line| match line.trim_start().starts_with("//") {
            true => "",
            false => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        // `edgepurge_edge_crate::…` or `$crate::…` are not this crate's paths.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars().chain([',']) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
        } else {
            out.insert(first_segment(rest));
        }
    }
    out.remove("");
    out
}

fn first_segment(path: &str) -> String {
    path.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

#[test]
fn no_module_of_a_role_crate_uses_one_above_it() {
    let root = repo_root();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md at the root");
    let orders = orders(&doc);
    let mut problems = Vec::new();
    for dir in CHECKED {
        let Some((_, order)) = orders.iter().find(|(d, _)| d == dir) else {
            problems
                .push(format!("ARCHITECTURE.md gives no module order for {dir} (`{MARKER}{dir} -->` + a code block)"));
            continue;
        };
        let src = root.join(dir);
        let present = modules_of(&src);
        let listed: BTreeSet<String> = order.iter().cloned().collect();
        for missing in present.difference(&listed) {
            problems.push(format!("{dir}: module `{missing}` is not in ARCHITECTURE.md's order"));
        }
        for gone in listed.difference(&present) {
            problems.push(format!("{dir}: ARCHITECTURE.md lists `{gone}`, which is not a module of the crate"));
        }
        let rank = |module: &str| order.iter().position(|m| m == module);
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let relative = file.strip_prefix(&src).expect("under src");
            let module = match relative.components().next().and_then(|c| c.as_os_str().to_str()) {
                // `store_tests.rs` holds the tests of `store.rs`, included with `#[path]`.
                Some(first) => first.trim_end_matches(".rs").trim_end_matches("_tests").to_owned(),
                None => continue,
            };
            let Some(own) = rank(&module) else { continue };
            let source = std::fs::read_to_string(&file).expect("readable source");
            for used in crate_uses(&source) {
                match rank(&used) {
                    Some(other) if other < own => problems.push(format!(
                        "{dir}/{}: `{module}` uses `crate::{used}`, which ARCHITECTURE.md lists above it",
                        relative.display()
                    )),
                    _ => {}
                }
            }
        }
    }
    assert!(problems.is_empty(), "the module order is broken:\n  {}", problems.join("\n  "));
}

#[test]
fn grouped_and_nested_crate_paths_are_all_seen() {
    let source = "use crate::{config::X, metrics, fill::{A, B}};\n// use crate::commented;\nlet x = crate::state::Shared::new();\nmacro!($crate::not_ours);\n";
    let uses: Vec<String> = crate_uses(source).into_iter().collect();
    assert_eq!(uses, ["config", "fill", "metrics", "state"]);
}

#[test]
fn the_order_is_read_from_the_marked_block() {
    let doc = "x\n<!-- layering: host/a/src -->\n```text\nserver   top\nstate/   bottom\n```\n";
    assert_eq!(orders(doc), vec![("host/a/src".to_owned(), vec!["server".to_owned(), "state".to_owned()])]);
}
