//! Plain Rust mirrors of the WIT types in `wit/policy.wit`.
//!
//! Policies work with these types, not with generated bindings, so their logic compiles and
//! unit-tests natively with `cargo test`. Field names follow the WIT names (kebab-case when
//! serialised, as in harness `cases.toml` files).

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// What a purge task asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(rename_all = "kebab-case"))]
pub enum TaskKind {
    /// One URL (every stored variant of it).
    #[default]
    Url,
    /// Every URL that starts with the target (a directory purge, or any string prefix).
    Prefix,
    /// Every object carrying the target tag.
    Tag,
    /// Every object of the target host.
    Host,
    /// Every object in the cache.
    Everything,
    /// Prefetch the target URL into the cache.
    Warm,
}

impl TaskKind {
    /// `url`, `prefix`, `tag`, `host`, `everything` or `warm` (as in JSON, metric labels, logs).
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Url => "url",
            TaskKind::Prefix => "prefix",
            TaskKind::Tag => "tag",
            TaskKind::Host => "host",
            TaskKind::Everything => "everything",
            TaskKind::Warm => "warm",
        }
    }
}

/// One purge task, as the control role generated it from a purge request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(Serialize, Deserialize),
    serde(rename_all = "kebab-case", default, deny_unknown_fields)
)]
pub struct Task {
    /// Unique id of the task within the control node.
    pub id: u64,
    /// What the task purges.
    pub kind: TaskKind,
    /// The normalised URL, prefix, tag or host; empty for `everything`.
    pub target: String,
    /// Soft purge: mark stale instead of removing.
    pub soft: bool,
    /// Size of the task message in bytes.
    pub size_bytes: u64,
    /// The tenant that submitted the purge.
    pub tenant: String,
    /// The host the task applies to; empty for `everything` and cross-host tags.
    pub host: String,
}

/// Bytes a queue sent in one earlier window, and how long that took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(Serialize, Deserialize),
    serde(rename_all = "kebab-case", default, deny_unknown_fields)
)]
pub struct SpeedSample {
    /// Bytes sent in the window.
    pub bytes: u64,
    /// Milliseconds the window took.
    pub millis: u64,
}

impl SpeedSample {
    /// The sample's speed in bytes per second, or `None` for an empty or zero-length window.
    pub fn bytes_per_sec(&self) -> Option<f64> {
        (self.bytes > 0 && self.millis > 0).then(|| self.bytes as f64 * 1000.0 / self.millis as f64)
    }
}

/// The state of one durable purge queue (the inputs of S0.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(Serialize, Deserialize),
    serde(rename_all = "kebab-case", default, deny_unknown_fields)
)]
pub struct QueueState {
    /// Index of the queue.
    pub index: u32,
    /// False when the queue failed or stalled.
    pub healthy: bool,
    /// Messages waiting (`n`).
    pub depth: u64,
    /// Bytes waiting (`Σ a_i`).
    pub pending_bytes: u64,
    /// Pacing interval `d` between two consecutive tasks, in ms.
    pub pacing_ms: u32,
    /// Speeds measured in the same cycle slot of earlier cycles.
    pub samples: Vec<SpeedSample>,
    /// Highest recent speed in bytes per second (0 when unknown).
    pub peak_bytes_per_sec: u64,
    /// Current position in the cycle.
    pub slot: u32,
}

/// Whether a purge removes objects or marks them stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(rename_all = "kebab-case"))]
pub enum PurgeMode {
    /// Removed: the next request goes to origin.
    #[default]
    Hard,
    /// Kept but stale: served only under stale-while-revalidate / stale-if-error.
    Soft,
}

impl PurgeMode {
    /// `hard` or `soft` (metric labels, logs).
    pub fn name(self) -> &'static str {
        match self {
            PurgeMode::Hard => "hard",
            PurgeMode::Soft => "soft",
        }
    }

    /// `Soft` when `soft` is true, else `Hard`.
    pub fn from_soft(soft: bool) -> Self {
        if soft {
            PurgeMode::Soft
        } else {
            PurgeMode::Hard
        }
    }
}

/// A concrete cache scope an edge purges without scanning its cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(rename_all = "kebab-case"))]
pub enum Scope {
    /// One normalised URL and every stored variant of it.
    Url(String),
    /// Every normalised URL that starts with this string.
    Prefix(String),
    /// Every object carrying this tag.
    Tag(String),
    /// Every object of this host.
    Host(String),
    /// Every object.
    Everything,
}

/// One scope to purge and how.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(rename_all = "kebab-case"))]
pub struct PurgeAction {
    /// What to purge.
    pub scope: Scope,
    /// Hard or soft.
    pub mode: PurgeMode,
}

/// What an edge does for one task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(Serialize, Deserialize),
    serde(rename_all = "kebab-case", default, deny_unknown_fields)
)]
pub struct PurgePlan {
    /// The scopes to purge, in order; empty means nothing to purge.
    pub actions: Vec<PurgeAction>,
}

/// One HTTP header; names are lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(rename_all = "kebab-case"))]
pub struct Header {
    /// Lower-case name.
    pub name: String,
    /// Value.
    pub value: String,
}

impl Header {
    /// A header with a lower-cased name.
    pub fn new(name: &str, value: &str) -> Self {
        Header { name: name.to_ascii_lowercase(), value: value.to_owned() }
    }
}

/// Finds the values of a header (case-insensitive name), in order.
pub fn header_values<'a, 'n>(headers: &'a [Header], name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
    headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}

/// The client request, as the edge sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(Serialize, Deserialize),
    serde(rename_all = "kebab-case", default, deny_unknown_fields)
)]
pub struct RequestMeta {
    /// Upper-case method.
    pub method: String,
    /// The normalised absolute URL.
    pub url: String,
    /// Request headers.
    pub headers: Vec<Header>,
}

impl RequestMeta {
    /// The first value of a header, if present.
    pub fn header<'a>(&'a self, name: &str) -> Option<&'a str> {
        header_values(&self.headers, name).next()
    }
}

/// The origin's response, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(Serialize, Deserialize),
    serde(rename_all = "kebab-case", default, deny_unknown_fields)
)]
pub struct ResponseMeta {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<Header>,
}

impl ResponseMeta {
    /// The first value of a header, if present.
    pub fn header<'a>(&'a self, name: &str) -> Option<&'a str> {
        header_values(&self.headers, name).next()
    }
}

/// Whether to store a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(rename_all = "kebab-case"))]
pub enum StoreChoice {
    /// No override: RFC 9111 decides.
    #[default]
    Rfc9111,
    /// Store it.
    Store,
    /// Do not store it.
    Bypass,
}

/// What the edge does with a response on a fill. `CacheDecision::default()` is "no override".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(Serialize, Deserialize),
    serde(rename_all = "kebab-case", default, deny_unknown_fields)
)]
pub struct CacheDecision {
    /// Store or not.
    pub store: StoreChoice,
    /// Freshness lifetime override in seconds.
    pub ttl_secs: Option<u32>,
    /// stale-while-revalidate window override in seconds.
    pub stale_while_revalidate_secs: Option<u32>,
    /// stale-if-error window override in seconds.
    pub stale_if_error_secs: Option<u32>,
    /// Extra tags to attach.
    pub tags: Vec<String>,
}

impl CacheDecision {
    /// True when the decision changes nothing (the host follows RFC 9111 alone).
    pub fn is_no_override(&self) -> bool {
        *self == CacheDecision::default()
    }
}

/// One of the four hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(rename_all = "kebab-case"))]
pub enum Hook {
    /// `select-queue`.
    SelectQueue,
    /// `scope-purge`.
    ScopePurge,
    /// `cache-rules`.
    CacheRules,
    /// `cache-key`.
    CacheKey,
}

impl Hook {
    /// Every hook, in WIT order.
    pub const ALL: [Hook; 4] = [Hook::SelectQueue, Hook::ScopePurge, Hook::CacheRules, Hook::CacheKey];

    /// The WIT name, e.g. `select-queue`.
    pub fn wit_name(self) -> &'static str {
        match self {
            Hook::SelectQueue => "select-queue",
            Hook::ScopePurge => "scope-purge",
            Hook::CacheRules => "cache-rules",
            Hook::CacheKey => "cache-key",
        }
    }
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.wit_name())
    }
}

/// The set of hooks a policy implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(Serialize, Deserialize),
    serde(rename_all = "kebab-case", default, deny_unknown_fields)
)]
pub struct Hooks {
    /// Implements `select-queue`.
    pub select_queue: bool,
    /// Implements `scope-purge`.
    pub scope_purge: bool,
    /// Implements `cache-rules`.
    pub cache_rules: bool,
    /// Implements `cache-key`.
    pub cache_key: bool,
}

impl Hooks {
    /// The set holding exactly `hooks`.
    pub const fn of(hooks: &[Hook]) -> Hooks {
        let mut set = Hooks { select_queue: false, scope_purge: false, cache_rules: false, cache_key: false };
        let mut i = 0;
        while i < hooks.len() {
            match hooks[i] {
                Hook::SelectQueue => set.select_queue = true,
                Hook::ScopePurge => set.scope_purge = true,
                Hook::CacheRules => set.cache_rules = true,
                Hook::CacheKey => set.cache_key = true,
            }
            i += 1;
        }
        set
    }

    /// Whether `hook` is in the set.
    pub fn contains(&self, hook: Hook) -> bool {
        match hook {
            Hook::SelectQueue => self.select_queue,
            Hook::ScopePurge => self.scope_purge,
            Hook::CacheRules => self.cache_rules,
            Hook::CacheKey => self.cache_key,
        }
    }

    /// The hooks in the set, in WIT order.
    pub fn iter(&self) -> impl Iterator<Item = Hook> + '_ {
        Hook::ALL.into_iter().filter(|h| self.contains(*h))
    }
}

/// What a policy says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(Serialize, Deserialize),
    serde(rename_all = "kebab-case", default, deny_unknown_fields)
)]
pub struct PolicyInfo {
    /// Short name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Implemented hooks.
    pub hooks: Hooks,
}

/// Severity of a policy log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(rename_all = "kebab-case"))]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}
