//! The `default` policy: exactly the host's built-in defaults ([`edgepurge_sdk::defaults`]),
//! compiled to a component.
//!
//! - `select-queue`: expected-wait queue selection of S0.3 (config `speed-floor-bytes-per-sec`).
//! - `scope-purge`: URL → the URL and all its variants; directory → prefix; tag, host,
//!   everything pass through; warm purges nothing.
//! - `cache-rules`: RFC 9111 alone, plus `default-ttl-secs` (config) when the origin states no
//!   freshness (S3.4).
//!
//! It declares these three hooks, so a host running it makes real policy calls — useful to
//! measure the sandbox and as the template for a custom policy.

use edgepurge_sdk::{export, Hook, Policy};

/// The default policy.
pub struct DefaultPolicy;

impl Policy for DefaultPolicy {
    const NAME: &'static str = "default";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const HOOKS: &'static [Hook] = &[Hook::SelectQueue, Hook::ScopePurge, Hook::CacheRules];
}

export!(DefaultPolicy);
