//! The backend-neutral conformance suite: every backend must pass it (DESIGN decision 8).
//!
//! A backend provides a [`Harness`] (make an empty store; drop one and open the same storage
//! again) and expands [`conformance_tests!`](crate::conformance_tests) in a test module, which
//! makes one `#[tokio::test]` per check (the crate using it needs `tokio` with `macros` and
//! `rt-multi-thread` as a dev-dependency). Each check is also a public async function that
//! panics on a violation, for backends that want their own test layout.
//!
//! The checks use only the traits, so they pin down the behaviour the API relies on: round trips,
//! per-queue offsets, all-or-nothing appends, durability across a reopen, idempotency, progress
//! from watermarks, record queries with paging, folding, trimming, token lookup by hash, the log
//! identity, an edge's positions and the write probe.

mod positions;
mod probe;
mod queues;
mod records;

use std::future::Future;

pub use positions::*;
pub use probe::*;
pub use queues::*;
pub use records::*;

use crate::model::*;
use crate::ControlStore;

/// What the suite needs from a backend.
pub trait Harness: Send + Sync {
    /// The store under test.
    type Store: ControlStore + 'static;

    /// A new, empty store with `queues` queues, isolated from every other store made.
    fn create(&self, queues: u32) -> impl Future<Output = Self::Store> + Send;

    /// Closes `store` (drops every handle) and opens the same storage again, as a restarted
    /// control node would.
    fn reopen(&self, store: Self::Store) -> impl Future<Output = Self::Store> + Send;
}

/// Expands to one `#[tokio::test]` per conformance check, each with a harness made by `$harness`.
///
/// ```ignore
/// edgepurge_control_store::conformance_tests!(MyHarness::new());
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@each $harness;
            append_read_round_trip,
            chunks_hold_what_read_returns,
            offsets_are_per_queue_and_contiguous,
            failed_append_leaves_nothing,
            acknowledged_batches_survive_reopen,
            idempotency_key_returns_first_batch,
            progress_follows_watermarks,
            failures_are_counted_per_edge_and_batch,
            edges_after_acceptance_or_decommissioned_do_not_count,
            records_by_url_prefix_tag_host_with_paging,
            a_large_batch_is_recorded_as_soon_as_it_is_accepted,
            folding_finds_undelivered_tasks_only,
            trimming_below_lowest_watermark,
            edge_reports_and_policy_are_recorded,
            tokens_are_found_by_hash_only,
            log_identity_is_durable_and_unique,
            watermarks_are_lowered_at_stream_start_and_forgotten_on_decommission,
            edge_events_are_kept_once_newest_first,
            write_probe_succeeds_and_changes_nothing_visible
        );
    };
    (@each $harness:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let harness = $harness;
                $crate::conformance::$check(&harness).await;
            }
        )*
    };
}

/// A batch from `token` accepted at `at`, without an idempotency key.
pub fn batch(token: &str, at: Millis) -> NewBatch {
    NewBatch { token_name: token.to_owned(), accepted_at: at, idempotency_key: None }
}

/// `n` URL tasks for `queue` on host `h.example`, targets `https://h.example/{tag}/{i}`.
pub fn urls(queue: u32, tag: &str, n: usize) -> Vec<NewTask> {
    (0..n).map(|i| NewTask::new(queue, TaskKind::Url, format!("https://h.example/{tag}/{i}"), "h.example")).collect()
}
