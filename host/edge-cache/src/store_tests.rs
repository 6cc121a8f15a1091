//! Unit tests of [`CacheStore`] and its sweeper.

use super::*;
use crate::{ScopeKind, SweepReport, Sweeper};

fn store() -> CacheStore<String> {
    CacheStore::new(StoreConfig::new(1 << 24), |v: &String| v.len() as u64).unwrap()
}

fn put(store: &CacheStore<String>, url: &str, variant: &str, host: &str, tags: &[&str]) {
    let meta = EntryMeta::new(url, host).with_tags(tags.iter().copied());
    store.insert(url, &Variant::opaque(variant), meta, format!("{url}#{variant}")).unwrap();
}

/// `None` for a miss, `Some(soft_purged)` for a hit.
fn look(store: &CacheStore<String>, url: &str, variant: &str) -> Option<bool> {
    store.get(url, &Variant::opaque(variant)).map(|hit| {
        assert_eq!(hit.value(), &format!("{url}#{variant}"));
        hit.soft_purged
    })
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<CacheStore<Vec<u8>>>();
    check::<Sweeper>();
}

#[test]
fn config_is_validated() {
    let weigh = |_: &u8| 1;
    assert_eq!(CacheStore::new(StoreConfig::new(0), weigh).unwrap_err(), ConfigError::ZeroCapacity);
    let too_big = StoreConfig::new(1000).with_max_object_bytes(1001);
    assert!(matches!(CacheStore::new(too_big, weigh), Err(ConfigError::MaxObjectSize { max: 1001, .. })));
}

#[test]
fn variants_are_separate_entries() {
    let s = store();
    put(&s, "https://h/a", "gzip", "h", &[]);
    put(&s, "https://h/a", "br", "h", &[]);
    assert_eq!(look(&s, "https://h/a", "gzip"), Some(false));
    assert_eq!(look(&s, "https://h/a", "br"), Some(false));
    assert_eq!(look(&s, "https://h/a", ""), None);
    assert_eq!(s.stats().entries, 2);
}

#[test]
fn oversized_objects_are_refused() {
    let s =
        CacheStore::new(StoreConfig::new(1 << 20).with_max_object_bytes(1000), |v: &String| v.len() as u64).unwrap();
    let err = s.insert("k", &Variant::none(), EntryMeta::new("k", "h"), "x".repeat(900)).unwrap_err();
    assert!(matches!(err, InsertError::TooLarge { max: 1000, .. }), "{err}");
    s.insert("k", &Variant::none(), EntryMeta::new("k", "h"), "x".repeat(100)).unwrap();
    assert_eq!(s.stats().rejected_too_large, 1);
}

#[test]
fn every_scope_purges_hard_and_soft() {
    let scopes = [
        Scope::Url("https://h/a/b".into()),
        Scope::Prefix("https://h/a/".into()),
        Scope::Prefix("https://h/a/b".into()),
        Scope::Tag("t".into()),
        Scope::Host("h".into()),
        Scope::Everything,
    ];
    for scope in scopes {
        for mode in [PurgeMode::Hard, PurgeMode::Soft] {
            let s = store();
            put(&s, "https://h/a/b", "v1", "h", &["t"]);
            put(&s, "https://h/a/b", "v2", "h", &["t"]);
            put(&s, "https://other/x", "", "other", &["u"]);
            s.purge(&scope, mode);
            let expected = match mode {
                PurgeMode::Hard => None,
                PurgeMode::Soft => Some(true),
            };
            assert_eq!(look(&s, "https://h/a/b", "v1"), expected, "{scope:?} {mode:?}");
            assert_eq!(look(&s, "https://h/a/b", "v2"), expected, "{scope:?} {mode:?}");
            let other = if scope == Scope::Everything { expected } else { Some(false) };
            assert_eq!(look(&s, "https://other/x", ""), other, "{scope:?} {mode:?}");
            // Storing again (after revalidation) makes it fresh.
            put(&s, "https://h/a/b", "v1", "h", &["t"]);
            assert_eq!(look(&s, "https://h/a/b", "v1"), Some(false), "{scope:?} {mode:?}");
            assert_eq!(s.stats().purges.get(ScopeKind::of(&scope), mode), 1);
        }
    }
}

#[test]
fn prefixes_need_not_end_at_a_slash() {
    let s = store();
    for url in ["https://h/image1", "https://h/images/2", "https://h/imag", "https://h/video"] {
        put(&s, url, "", "h", &[]);
    }
    s.purge(&Scope::Prefix("https://h/image".into()), PurgeMode::Hard);
    assert_eq!(look(&s, "https://h/image1", ""), None);
    assert_eq!(look(&s, "https://h/images/2", ""), None);
    assert_eq!(look(&s, "https://h/imag", ""), Some(false));
    assert_eq!(look(&s, "https://h/video", ""), Some(false));
}

#[test]
fn url_purges_match_the_url_not_the_primary_key() {
    let s = store();
    let meta = EntryMeta::new("https://h/p?utm=1", "h");
    s.insert("policy-key:/p", &Variant::none(), meta, "v".into()).unwrap();
    let outcome = s.purge(&Scope::Url("https://h/p?utm=1".into()), PurgeMode::Hard);
    assert_eq!(outcome.direct, 1);
    assert!(s.get("policy-key:/p", &Variant::none()).is_none());
    assert_eq!(s.stats().entries, 0, "exact purges reclaim at once");
    // A URL purge is exact: longer URLs are untouched.
    put(&s, "https://h/p2", "", "h", &[]);
    s.purge(&Scope::Url("https://h/p".into()), PurgeMode::Hard);
    assert_eq!(look(&s, "https://h/p2", ""), Some(false));
}

#[test]
fn fills_racing_a_purge_are_refused_or_stored_stale() {
    let s = store();
    let fill = s.begin_fill();
    s.purge(&Scope::Tag("t".into()), PurgeMode::Hard);
    let meta = EntryMeta::new("https://h/a", "h").with_tags(["t"]);
    let err = s.insert_filled(fill, "https://h/a", &Variant::none(), meta.clone(), "v".into()).unwrap_err();
    assert!(matches!(err, InsertError::PurgedDuringFill { fill_seq: 0, purge_seq: 1 }), "{err}");
    // A fill that does not match the purge is stored.
    let other = EntryMeta::new("https://h/b", "h");
    s.insert_filled(fill, "https://h/b", &Variant::none(), other, "https://h/b#".into()).unwrap();
    assert_eq!(look(&s, "https://h/b", ""), Some(false));

    let fill = s.begin_fill();
    s.purge(&Scope::Host("h".into()), PurgeMode::Soft);
    s.insert_filled(fill, "https://h/a", &Variant::none(), meta.clone(), "https://h/a#".into()).unwrap();
    assert_eq!(look(&s, "https://h/a", ""), Some(true));

    // After a sweep pass dropped the markers, an old token can no longer be checked.
    assert!(s.sweep_full().pass_completed);
    let err = s.insert_filled(fill, "https://h/a", &Variant::none(), meta, "v".into()).unwrap_err();
    assert!(matches!(err, InsertError::FillTooOld { .. }), "{err}");
    assert_eq!(s.stats().rejected_fill, 2);
}

#[test]
fn sweeping_reclaims_and_drops_markers_without_changing_answers() {
    let s = store();
    for i in 0..200 {
        put(&s, &format!("https://h/{i}"), "", "h", &[if i % 2 == 0 { "even" } else { "odd" }]);
    }
    s.purge(&Scope::Tag("even".into()), PurgeMode::Hard);
    s.purge(&Scope::Prefix("https://h/1".into()), PurgeMode::Soft);
    let answers = |s: &CacheStore<String>| (0..200).map(|i| look(s, &format!("https://h/{i}"), "")).collect::<Vec<_>>();
    let before = answers(&s);
    assert!(s.stats().markers >= 2);

    let mut report = s.sweep_step(10);
    assert!(report.pass_started && !report.pass_completed);
    assert_eq!(answers(&s), before, "mid-pass");
    while !report.pass_completed {
        report = s.sweep_step(10);
    }
    assert_eq!(answers(&s), before);
    s.run_pending_tasks();
    let stats = s.stats();
    assert_eq!(stats.entries, 100);
    assert_eq!(stats.markers, 0);
    assert_eq!(stats.sweep_passes, 1);
    // No purge since: the sweeper has nothing to do.
    assert_eq!(s.sweep_step(10), SweepReport::default());
}

#[test]
fn full_stores_evict_and_count() {
    let config = StoreConfig { entry_overhead_bytes: 0, ..StoreConfig::new(10_000).with_max_object_bytes(1_000) };
    let s = CacheStore::new(config, |v: &String| v.len() as u64).unwrap();
    for i in 0..1_000 {
        let url = format!("https://h/{i:04}");
        s.insert(&url, &Variant::none(), EntryMeta::new(&url, "h"), "x".repeat(80)).unwrap();
    }
    s.run_pending_tasks();
    let stats = s.stats();
    assert!(stats.bytes <= 10_000, "{stats:?}");
    assert!(stats.evictions >= 900, "{stats:?}");
    assert_eq!(stats.entries, s.cache.entry_count(), "index and cache agree");
}

#[test]
fn entries_expire_after_keep_for() {
    let s = store();
    let meta = EntryMeta::new("https://h/a", "h").with_keep_for(Duration::from_millis(30));
    s.insert("https://h/a", &Variant::none(), meta, "https://h/a#".into()).unwrap();
    assert_eq!(look(&s, "https://h/a", ""), Some(false));
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(look(&s, "https://h/a", ""), None);
    // Removal happens when the cache's timer wheel (about 1 s granularity) comes round.
    for _ in 0..50 {
        s.run_pending_tasks();
        if s.stats().expirations == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s.stats().expirations, 1);
    assert_eq!(s.stats().entries, 0);
}

#[test]
fn concurrent_use_never_serves_purged_entries() {
    let s = Arc::new(store());
    let _sweeper = s.spawn_sweeper(Duration::from_millis(1), 64).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let s = &s;
            scope.spawn(move || {
                let tag = format!("t{t}");
                for i in 0..2_000 {
                    let url = format!("https://h/{t}/{}", i % 50);
                    put(s, &url, "", "h", &[&tag]);
                    let (scope, mode) = match i % 7 {
                        0 => (Scope::Prefix(format!("https://h/{t}/")), PurgeMode::Hard),
                        3 => (Scope::Tag(tag.clone()), PurgeMode::Soft),
                        _ => continue,
                    };
                    let outcome = s.purge(&scope, mode);
                    // Nothing this thread stored before its own purge comes back unpurged.
                    for j in 0..50 {
                        let Some(hit) = s.get(&format!("https://h/{t}/{j}"), &Variant::none()) else { continue };
                        if hit.entry.stored_at() < outcome.seq {
                            assert!(mode == PurgeMode::Soft && hit.soft_purged, "{:?} {mode:?}", hit.entry);
                        }
                    }
                }
            });
        }
    });
    let stats = s.stats();
    assert_eq!(stats.purges.get(ScopeKind::Prefix, PurgeMode::Hard), 4 * 286);
    assert_eq!(stats.purges.get(ScopeKind::Tag, PurgeMode::Soft), 4 * 286);
}
