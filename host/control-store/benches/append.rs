//! Append cost of one batch of N URLs into the SQLite store (one transaction, WAL, fsync at
//! commit), as the bulk purge endpoint does it.
//!
//! Sizes: 10,000 and 100,000 URLs per batch (override with
//! `CONTROL_STORE_BENCH_SIZES=10000,1000000`). The database lives in a temporary directory under
//! `TMPDIR` (so on whatever disk that is: put it on the disk the control node will use). Each
//! iteration appends one more batch to the same, growing store, spread over 4 queues like the
//! default configuration. Criterion reports the rate as elements (URLs) per second. With
//! `--bench`, one 1,000,000-URL batch is also timed once and printed, before the criterion runs.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgepurge_control_store::{NewBatch, NewTask, QueueStore, SqliteStore, TaskKind};

const QUEUES: u32 = 4;

fn benching() -> bool {
    // `cargo test --all-targets` runs benches without `--bench` as a smoke test: keep it small.
    std::env::args().any(|a| a == "--bench")
}

fn sizes() -> Vec<usize> {
    if !benching() {
        return vec![1_000];
    }
    std::env::var("CONTROL_STORE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').map(|n| n.trim().parse().expect("a size")).collect())
        .unwrap_or_else(|| vec![10_000, 100_000])
}

/// `n` distinct URLs of realistic length (~60 bytes), over 100 hosts and 4 queues.
fn tasks(round: u64, n: usize) -> Vec<NewTask> {
    (0..n)
        .map(|i| {
            let host = format!("h{}.example.com", i % 100);
            let url = format!("https://{host}/assets/r{round}/dir{}/object-{i}.jpg", i % 1000);
            NewTask::new((i % QUEUES as usize) as u32, TaskKind::Url, url, host)
        })
        .collect()
}

fn batch(round: u64) -> NewBatch {
    NewBatch { token_name: "bench".into(), accepted_at: round, idempotency_key: None }
}

fn once_million(rt: &tokio::runtime::Runtime, dir: &std::path::Path) {
    let store = SqliteStore::open(dir.join("million.db"), QUEUES).expect("open");
    let tasks = tasks(0, 1_000_000);
    let started = Instant::now();
    rt.block_on(store.append(batch(0), tasks)).expect("append");
    let took = started.elapsed();
    let size = std::fs::metadata(dir.join("million.db")).map_or(0, |m| m.len())
        + std::fs::metadata(dir.join("million.db-wal")).map_or(0, |m| m.len());
    eprintln!(
        "one batch of 1,000,000 URLs: {:.2} s, {:.0} URLs/s, database + WAL {} MiB",
        took.as_secs_f64(),
        1e6 / took.as_secs_f64(),
        size >> 20
    );
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    if benching() {
        once_million(&rt, dir.path());
    }
    let store = SqliteStore::open(dir.path().join("bench.db"), QUEUES).expect("open");
    let mut group = c.benchmark_group("append_one_batch");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).warm_up_time(Duration::from_secs(2));
    let mut round = 1;
    for n in sizes() {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("urls", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Building the tasks is the API's work, not the store's: keep it off the clock.
                    let tasks = tasks(round, n);
                    round += 1;
                    let started = Instant::now();
                    rt.block_on(store.append(batch(round), tasks)).expect("append");
                    total += started.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
