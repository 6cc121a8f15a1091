//! The one `bindgen!` of the host, generated from the same `wit/` the guest SDK uses.
//!
//! Exports are async: every policy call runs on a wasmtime fiber, so guest code that writes to
//! stdout (which WASI implements with tokio) works when the host calls from a tokio task.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "policy",
    path: "../../wit",
    exports: { default: async },
});

pub use edgepurge::policy::types as wit;
