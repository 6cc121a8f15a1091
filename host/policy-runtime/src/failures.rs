//! Policy failures: their kinds, counters per hook and kind, and once-per-burst logging.

use edgepurge_sdk::Hook;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a policy call was answered by the built-in default instead of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The guest trapped (panic, unreachable, out-of-bounds access, ...).
    Trap,
    /// The call ran past its deadline (epoch interruption).
    Deadline,
    /// The guest tried to grow memory or tables past its cap.
    Memory,
    /// The guest returned a value the host refuses (wrong length, unknown queue, scope
    /// outside the task's host, oversized strings, ...).
    InvalidReturn,
    /// A fresh instance could not be created (instance pool exhausted, start-up trap).
    Instantiate,
}

impl FailureKind {
    /// Every kind, in a stable order.
    pub const ALL: [FailureKind; 5] = [
        FailureKind::Trap,
        FailureKind::Deadline,
        FailureKind::Memory,
        FailureKind::InvalidReturn,
        FailureKind::Instantiate,
    ];

    /// Stable lower-case name used in metrics, logs and harness cases (`invalid-return`).
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Deadline => "deadline",
            FailureKind::Memory => "memory",
            FailureKind::InvalidReturn => "invalid-return",
            FailureKind::Instantiate => "instantiate",
        }
    }

    /// The kind named `name`, as written by [`FailureKind::name`].
    pub fn from_name(name: &str) -> Option<FailureKind> {
        FailureKind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn slot(self) -> usize {
        FailureKind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn hook_slot(hook: Hook) -> usize {
    Hook::ALL.iter().position(|h| *h == hook).unwrap_or(0)
}

/// Failure counters of one policy, per hook and kind, plus the burst logger.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    counts: [[AtomicU64; 5]; 4],
    burst: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

/// How long after a logged failure further failures are only counted.
const BURST_WINDOW: Duration = Duration::from_secs(10);

impl Failures {
    /// Counts a failure and logs it unless one was logged within the burst window; the next
    /// logged failure says how many were suppressed in between.
    pub(crate) fn record(&self, policy: &str, hook: Hook, kind: FailureKind, detail: &str) {
        self.counts[hook_slot(hook)][kind.slot()].fetch_add(1, Ordering::Relaxed);
        let mut last = self.burst.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < BURST_WINDOW) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(now);
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        tracing::warn!(
            target: "edgepurge::policy",
            policy,
            hook = hook.wit_name(),
            kind = kind.name(),
            suppressed,
            "policy call failed, used the built-in default: {detail}"
        );
    }

    /// The count for one hook and kind.
    pub(crate) fn count(&self, hook: Hook, kind: FailureKind) -> u64 {
        self.counts[hook_slot(hook)][kind.slot()].load(Ordering::Relaxed)
    }
}

/// A snapshot of a policy's failure counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailureCounts {
    /// `(hook, kind, count)` for every non-zero counter.
    pub counts: Vec<(Hook, FailureKind, u64)>,
}

impl FailureCounts {
    pub(crate) fn of(failures: &Failures) -> Self {
        let mut counts = Vec::new();
        for hook in Hook::ALL {
            for kind in FailureKind::ALL {
                let n = failures.count(hook, kind);
                if n > 0 {
                    counts.push((hook, kind, n));
                }
            }
        }
        FailureCounts { counts }
    }

    /// Failures of `kind` across all hooks.
    pub fn of_kind(&self, kind: FailureKind) -> u64 {
        self.counts.iter().filter(|(_, k, _)| *k == kind).map(|(_, _, n)| n).sum()
    }

    /// All failures.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, _, n)| n).sum()
    }
}
