//! # edgepurge-sdk — write edgepurge policies in Rust
//!
//! A policy is a WebAssembly component that decides, inside the host's sandbox, which purge
//! queue a task goes to (`select-queue`), what an edge purges for a task (`scope-purge`), how
//! a response is cached (`cache-rules`) and, optionally, the cache key of a request
//! (`cache-key`). The world is `edgepurge:policy@0.1.0` in the repository's `wit/`.
//!
//! Implement [`Policy`] on a type, overriding only the hooks you need (the others keep the
//! built-in defaults of [`defaults`], which are also what the host does when your policy fails),
//! list them in [`Policy::HOOKS`], and call [`export!`]. On `wasm32` the macro emits the
//! component's exports; natively it emits nothing, so your logic unit-tests with `cargo test`
//! on the plain types of this crate.
//!
//! ```
//! use edgepurge_sdk::{export, CacheControl, CacheDecision, Hook, Policy, RequestMeta, ResponseMeta, UrlParts};
//!
//! /// Caches every GET under /api/ for 60 s unless the origin says otherwise, and tags it
//! /// with its first path segment after /api/.
//! pub struct ApiCache;
//!
//! impl Policy for ApiCache {
//!     const NAME: &'static str = "api-cache";
//!     const VERSION: &'static str = "1.0.0";
//!     const HOOKS: &'static [Hook] = &[Hook::CacheRules];
//!
//!     fn cache_rules(req: &RequestMeta, resp: &ResponseMeta) -> CacheDecision {
//!         let Some(url) = UrlParts::parse(&req.url) else { return CacheDecision::default() };
//!         if req.method != "GET" || !url.path.starts_with("/api/") {
//!             return CacheDecision::default();
//!         }
//!         let cc = CacheControl::from_headers(&resp.headers);
//!         CacheDecision {
//!             ttl_secs: Some(cc.max_age().unwrap_or(60)),
//!             tags: url.segments().nth(1).map(|s| vec![format!("api:{s}")]).unwrap_or_default(),
//!             ..CacheDecision::default()
//!         }
//!     }
//! }
//!
//! export!(ApiCache);
//!
//! // Natively, the same code is plain Rust:
//! let req = RequestMeta { method: "GET".into(), url: "https://a.com/api/users/7".into(), ..Default::default() };
//! let resp = ResponseMeta { status: 200, headers: vec![] };
//! let decision = ApiCache::cache_rules(&req, &resp);
//! assert_eq!(decision.ttl_secs, Some(60));
//! assert_eq!(decision.tags, ["api:users"]);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release` (a `cdylib` crate), then check
//! and test it with `edgepurge policy check` and `edgepurge policy test`.
#![deny(missing_docs)]

pub mod cache_control;
pub mod config;
pub mod cycle;
pub mod defaults;
pub mod log;
mod types;
pub mod url;

pub use cache_control::CacheControl;
pub use config::{ConfigSource, GuestConfig};
pub use types::*;
pub use url::UrlParts;

/// A policy: override the hooks you implement and list them in [`Policy::HOOKS`].
///
/// Every method has the built-in default of [`defaults`], so an unlisted hook behaves exactly
/// as the host behaves without a policy. Methods are associated functions: the host may run
/// each call in a fresh instance, so a policy keeps no state between calls.
pub trait Policy {
    /// Short name shown by the host and `edgepurge policy check`.
    const NAME: &'static str;
    /// Version, e.g. `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// The hooks this policy implements; the host calls only these.
    const HOOKS: &'static [Hook];

    /// Chooses a queue for each task of a chunk (one `QueueState::index` per task, in task
    /// order). By default: [`defaults::select_queue`] (expected wait, S0.3).
    fn select_queue(tasks: &[Task], queues: &[QueueState], now_ms: u64) -> Vec<u32> {
        defaults::select_queue(tasks, queues, now_ms, &GuestConfig)
    }

    /// Turns a task into the scopes an edge purges. By default: [`defaults::scope_purge`].
    fn scope_purge(task: &Task) -> PurgePlan {
        defaults::scope_purge(task)
    }

    /// Decides how a response is cached. By default: [`defaults::cache_rules`].
    fn cache_rules(request: &RequestMeta, response: &ResponseMeta) -> CacheDecision {
        defaults::cache_rules(request, response, &GuestConfig)
    }

    /// The cache key of a request, or `None` for the host's own. By default `None`.
    fn cache_key(request: &RequestMeta) -> Option<String> {
        defaults::cache_key(request)
    }

    /// The [`PolicyInfo`] that `describe` returns.
    fn info() -> PolicyInfo {
        PolicyInfo { name: Self::NAME.to_owned(), version: Self::VERSION.to_owned(), hooks: Hooks::of(Self::HOOKS) }
    }
}

/// Exports a [`Policy`] type as the component's implementation of the `policy` world.
///
/// Emits code only when compiling for `wasm32`; natively it expands to nothing.
#[macro_export]
macro_rules! export {
    ($policy:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type EdgepurgeComponent = $crate::__glue::Adapter<$policy>;
    $crate::__bindings::__export_edgepurge_policy!(EdgepurgeComponent with_types_in $crate::__bindings);
        };
    };
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod __bindings {
    wit_bindgen::generate!({
        world: "policy",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_edgepurge_policy",
        default_bindings_module: "edgepurge_sdk::__bindings",
    });
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __glue;
