//! Purge and lookup cost against the number of stored entries.
//!
//! For each size (default 10^4 and 10^7; override with `EDGE_CACHE_BENCH_SIZES=10000,1000000`)
//! one store is populated once with tiny values: entry `i` has URL
//! `https://h{i % 100}.example/d{i / 100 % 1000}/o{i}`, host `h{i % 100}.example` and tag
//! `t{i % 1000}`. Then, on that store: lookups of random stored keys, and soft purges (a hard
//! purge records the same marker; soft keeps the entries for the lookups) of a prefix that does
//! not end at `/`, a tag, a host, everything, and one exact URL. Each purge benchmark rotates
//! over 4096 distinct arguments.

use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use edgepurge_edge_cache::{CacheStore, EntryMeta, PurgeMode, Scope, StoreConfig, Variant};

fn url(i: u64) -> String {
    format!("https://h{}.example/d{}/o{i}", i % 100, i / 100 % 1000)
}

fn sizes() -> Vec<u64> {
    // `cargo test --all-targets` runs benches once without `--bench` as a smoke test: keep
    // that run small instead of populating ten million entries in CI.
    if !std::env::args().any(|a| a == "--bench") {
        return vec![1_000];
    }
    std::env::var("EDGE_CACHE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').map(|n| n.trim().parse().expect("a size")).collect())
        .unwrap_or_else(|| vec![10_000, 10_000_000])
}

fn rss_mib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    (pages * 4096) >> 20
}

/// A small deterministic generator (xorshift), so runs are comparable.
fn pseudo_random(n: usize, below: u64) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % below
        })
        .collect()
}

fn populate(n: u64) -> CacheStore<u32> {
    let config = StoreConfig::new(1 << 40).with_max_object_bytes(1 << 20);
    let store = CacheStore::new(config, |_: &u32| 4).expect("valid config");
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get() as u64);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let store = &store;
            scope.spawn(move || {
                for i in (t..n).step_by(threads as usize) {
                    let u = url(i);
                    let meta = EntryMeta {
                        url: u.clone(),
                        host: format!("h{}.example", i % 100),
                        tags: vec![format!("t{}", i % 1000)],
                        keep_for: None,
                    };
                    store.insert(&u, &Variant::none(), meta, i as u32).expect("stored");
                }
            });
        }
    });
    store.run_pending_tasks();
    let stats = store.stats();
    eprintln!(
        "populated {n} entries in {:.1} s: {} entries, {} MiB weighed, RSS {} MiB",
        started.elapsed().as_secs_f64(),
        stats.entries,
        stats.bytes >> 20,
        rss_mib()
    );
    assert_eq!(stats.entries, n, "nothing may be evicted");
    store
}

fn bench_size(c: &mut Criterion, n: u64) {
    let store = populate(n);
    let mut group = c.benchmark_group("edge-cache");

    let keys: Vec<String> = pseudo_random(4096, n).into_iter().map(url).collect();
    let none = Variant::none();
    let mut k = 0;
    group.bench_with_input(BenchmarkId::new("lookup", n), &keys, |b, keys| {
        b.iter(|| {
            k = (k + 1) % keys.len();
            black_box(store.get(&keys[k], &none)).expect("stored")
        })
    });

    let mut scoped = |name: &str, args: Vec<Scope>| {
        let mut k = 0;
        group.bench_with_input(BenchmarkId::new(name, n), &args, |b, args| {
            b.iter(|| {
                k = (k + 1) % args.len();
                store.purge(&args[k], PurgeMode::Soft)
            })
        });
    };
    // Prefixes ending mid-segment: "https://h7.example/d12" also covers d120..d129.
    scoped("purge_prefix", (0..4096).map(|i| Scope::Prefix(format!("https://h{}.example/d{}", i % 100, i))).collect());
    scoped("purge_tag", (0..4096).map(|i| Scope::Tag(format!("t{}", i % 1000))).collect());
    scoped("purge_host", (0..4096).map(|i| Scope::Host(format!("h{}.example", i % 100))).collect());
    scoped("purge_everything", vec![Scope::Everything]);
    scoped("purge_url", pseudo_random(4096, n).into_iter().map(|i| Scope::Url(url(i))).collect());

    // Lookups again, now that thousands of markers exist (entries come back soft-purged).
    let mut k = 0;
    group.bench_with_input(BenchmarkId::new("lookup_after_purges", n), &keys, |b, keys| {
        b.iter(|| {
            k = (k + 1) % keys.len();
            black_box(store.get(&keys[k], &none)).expect("stored")
        })
    });
    eprintln!("markers after the purge benchmarks: {}", store.stats().markers);
    group.finish();
}

fn benches(c: &mut Criterion) {
    for n in sizes() {
        bench_size(c, n);
    }
}

criterion_group!(purge, benches);
criterion_main!(purge);
