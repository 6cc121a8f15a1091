//! Load-time validation: a policy that imports anything outside the allowed interfaces, or
//! lacks an export of the `policy` world, is rejected when it is loaded, never when called.

use wasmtime::component::Component;
use wasmtime::Engine;

/// Interfaces a policy may import, as `namespace:package/interface` (any version).
///
/// Our own `host` (and the `types` it uses) plus what Rust's std pulls in on
/// `wasm32-wasip2` for printing, clocks, randomness (HashMap seeds) and process exit. The host
/// serves these with an empty environment, closed stdin and captured output.
/// `wasi:filesystem/*`, `wasi:sockets/*` and anything unknown are refused.
pub const ALLOWED_IMPORTS: &[&str] = &[
    "edgepurge:policy/host",
    "edgepurge:policy/types",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
];

/// The exports of the `policy` world.
pub const REQUIRED_EXPORTS: &[&str] = &["describe", "select-queue", "scope-purge", "cache-rules", "cache-key"];

/// The imports of `component` that are not allowed, with their full names (sorted).
pub fn forbidden_imports(engine: &Engine, component: &Component) -> Vec<String> {
    let mut bad: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .filter(|name| !ALLOWED_IMPORTS.contains(&unversioned(name)))
        .collect();
    bad.sort();
    bad
}

/// The exports of the `policy` world that `component` lacks.
pub fn missing_exports(engine: &Engine, component: &Component) -> Vec<String> {
    let ty = component.component_type();
    let have: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    REQUIRED_EXPORTS.iter().filter(|e| !have.contains(e)).map(|e| e.to_string()).collect()
}

/// `wasi:io/streams@0.2.6` → `wasi:io/streams`.
fn unversioned(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_ignored() {
        assert_eq!(unversioned("wasi:io/streams@0.2.6"), "wasi:io/streams");
        assert!(ALLOWED_IMPORTS.contains(&unversioned("edgepurge:policy/host@0.1.0")));
        assert!(!ALLOWED_IMPORTS.contains(&unversioned("wasi:filesystem/types@0.2.6")));
    }
}
