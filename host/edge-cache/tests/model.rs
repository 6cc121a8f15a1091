//! Property test: the store against a naive model (a map of live entries, purged by scanning).
//!
//! Random sequences of inserts (URLs from a tiny alphabet so prefixes overlap; hosts, tags,
//! variants; primary keys that sometimes differ from the URL), fills racing purges, lookups,
//! sweep steps and purges of every scope and mode, with a large capacity (nothing evicted) or a
//! small one (evictions). Checked on every lookup:
//!
//! - the store never returns an object the model says is hard-purged, replaced or never stored;
//! - it never returns a soft-purged object without the soft flag (nor a fresh one with it);
//! - with the large capacity it never loses an object the model holds;
//! - a sweep step never changes the answer of any lookup.

use std::collections::HashMap;

use edgepurge_edge_cache::{CacheStore, EntryMeta, FillToken, InsertError, PurgeMode, Scope, StoreConfig, Variant};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Obj {
    primary_is_url: bool,
    url: String,
    variant: &'static str,
    host: &'static str,
    tags: Vec<&'static str>,
}

impl Obj {
    fn primary(&self) -> String {
        if self.primary_is_url {
            self.url.clone()
        } else {
            // A "policy cache key" shared by several URLs.
            format!("key:{}", &self.url[..self.url.len().min(2)])
        }
    }

    fn matches(&self, scope: &Scope) -> bool {
        match scope {
            Scope::Url(url) => &self.url == url,
            Scope::Prefix(prefix) => self.url.starts_with(prefix.as_str()),
            Scope::Tag(tag) => self.tags.contains(&tag.as_str()),
            Scope::Host(host) => self.host == host,
            Scope::Everything => true,
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert(Obj),
    BeginFill(usize),
    InsertFilled(usize, Obj),
    Get(Obj),
    Purge(Scope, PurgeMode),
    Sweep(usize),
}

fn url() -> impl Strategy<Value = String> {
    "[ab/]{0,4}".prop_map(|s| format!("h{s}"))
}

fn obj() -> impl Strategy<Value = Obj> {
    (
        any::<bool>(),
        url(),
        prop::sample::select(vec!["", "gzip", "br"]),
        prop::sample::select(vec!["h1", "h2"]),
        prop::sample::subsequence(vec!["t1", "t2", "t3"], 0..=2),
    )
        .prop_map(|(primary_is_url, url, variant, host, tags)| Obj { primary_is_url, url, variant, host, tags })
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        url().prop_map(Scope::Url),
        "[ab/]{0,3}".prop_map(|s| Scope::Prefix(format!("h{s}"))),
        Just(Scope::Prefix(String::new())),
        prop::sample::select(vec!["t1", "t2", "t3"]).prop_map(|t| Scope::Tag(t.into())),
        prop::sample::select(vec!["h1", "h2", "h3"]).prop_map(|h| Scope::Host(h.into())),
        Just(Scope::Everything),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let mode = prop_oneof![Just(PurgeMode::Hard), Just(PurgeMode::Soft)];
    prop_oneof![
        4 => obj().prop_map(Op::Insert),
        1 => (0..3usize).prop_map(Op::BeginFill),
        1 => ((0..3usize), obj()).prop_map(|(slot, o)| Op::InsertFilled(slot, o)),
        4 => obj().prop_map(Op::Get),
        3 => (scope(), mode).prop_map(|(s, m)| Op::Purge(s, m)),
        // Mostly one shard per step, so inserts and purges land in the middle of passes.
        2 => prop_oneof![3 => 0..2usize, 1 => 0..40usize].prop_map(Op::Sweep),
    ]
}

/// What the model holds under a (primary, variant) key.
#[derive(Clone, Debug)]
struct Live {
    obj: Obj,
    id: u64,
    soft: bool,
}

/// A fill in flight: its token, the purges made since, whether a sweep pass completed since.
struct Fill {
    token: FillToken,
    purges_since: Vec<(Scope, PurgeMode)>,
    pass_completed_since: bool,
}

struct Model {
    store: CacheStore<u64>,
    live: HashMap<(String, &'static str), Live>,
    fills: HashMap<usize, Fill>,
    next_id: u64,
    evicting: bool,
}

impl Model {
    fn new(capacity: u64) -> Self {
        let config = StoreConfig { index_shards: 8, ..StoreConfig::new(capacity).with_max_object_bytes(1_000) };
        let store = CacheStore::new(config, |_: &u64| 8).unwrap();
        Model { store, live: HashMap::new(), fills: HashMap::new(), next_id: 0, evicting: capacity < 1 << 20 }
    }

    fn store_obj(&mut self, o: &Obj, fill: Option<FillToken>) -> Result<(), InsertError> {
        self.next_id += 1;
        let meta = EntryMeta::new(&o.url, o.host).with_tags(o.tags.iter().copied());
        let variant = Variant::opaque(o.variant);
        match fill {
            None => self.store.insert(&o.primary(), &variant, meta, self.next_id),
            Some(token) => self.store.insert_filled(token, &o.primary(), &variant, meta, self.next_id),
        }
    }

    fn insert(&mut self, o: &Obj) {
        self.store_obj(o, None).expect("small objects are stored");
        self.live.insert((o.primary(), o.variant), Live { obj: o.clone(), id: self.next_id, soft: false });
    }

    fn insert_filled(&mut self, slot: usize, o: &Obj) {
        let Some(fill) = self.fills.get(&slot) else { return };
        let token = fill.token;
        let matching: Vec<PurgeMode> =
            fill.purges_since.iter().filter(|(scope, _)| o.matches(scope)).map(|(_, m)| *m).collect();
        let pass_completed_since = fill.pass_completed_since;
        let result = self.store_obj(o, Some(token));
        let key = (o.primary(), o.variant);
        match result {
            Err(InsertError::FillTooOld { .. }) => {
                assert!(pass_completed_since, "FillTooOld without a completed sweep pass");
                // Refused: what was there stays.
            }
            Err(InsertError::PurgedDuringFill { .. }) => {
                assert!(matching.contains(&PurgeMode::Hard), "refused without a matching hard purge");
            }
            Err(e) => panic!("unexpected {e}"),
            Ok(()) => {
                assert!(!matching.contains(&PurgeMode::Hard), "stored despite a hard purge during the fill");
                let soft = matching.contains(&PurgeMode::Soft);
                self.live.insert(key, Live { obj: o.clone(), id: self.next_id, soft });
            }
        }
    }

    /// The store's answer, checked against the model: `None` or `Some((id, soft))`.
    fn get(&self, o: &Obj) -> Option<(u64, bool)> {
        let key = (o.primary(), o.variant);
        let got = self.store.get(&key.0, &Variant::opaque(o.variant)).map(|h| (*h.value(), h.soft_purged));
        match (self.live.get(&key), got) {
            (None, None) => {}
            (None, Some(got)) => panic!("{key:?}: store returned {got:?}, model holds nothing (purged?)"),
            (Some(live), None) => {
                assert!(self.evicting, "{key:?}: lost {live:?} without eviction");
            }
            (Some(live), Some((id, soft))) => {
                assert_eq!(id, live.id, "{key:?}: stale object returned");
                assert_eq!(soft, live.soft, "{key:?}: soft flag wrong for {live:?}");
            }
        }
        got
    }

    fn purge(&mut self, scope: &Scope, mode: PurgeMode) {
        self.store.purge(scope, mode);
        match mode {
            PurgeMode::Hard => self.live.retain(|_, l| !l.obj.matches(scope)),
            PurgeMode::Soft => self.live.values_mut().filter(|l| l.obj.matches(scope)).for_each(|l| l.soft = true),
        }
        for fill in self.fills.values_mut() {
            fill.purges_since.push((scope.clone(), mode));
        }
    }

    fn all_answers(&self, probes: &[Obj]) -> Vec<Option<(u64, bool)>> {
        probes.iter().map(|o| self.get(o)).collect()
    }

    fn sweep(&mut self, budget: usize, probes: &[Obj]) {
        let before = if self.evicting { None } else { Some(self.all_answers(probes)) };
        let report = self.store.sweep_step(budget);
        if report.pass_completed {
            self.fills.values_mut().for_each(|f| f.pass_completed_since = true);
        }
        if let Some(before) = before {
            assert_eq!(self.all_answers(probes), before, "a sweep step changed lookups ({report:?})");
        }
    }
}

fn run(ops: Vec<Op>, capacity: u64) {
    let mut model = Model::new(capacity);
    let mut probes: Vec<Obj> = Vec::new();
    for op in ops {
        match op {
            Op::Insert(o) => {
                model.insert(&o);
                probes.push(o);
            }
            Op::BeginFill(slot) => {
                let fill = Fill { token: model.store.begin_fill(), purges_since: vec![], pass_completed_since: false };
                model.fills.insert(slot, fill);
            }
            Op::InsertFilled(slot, o) => {
                model.insert_filled(slot, &o);
                probes.push(o);
            }
            Op::Get(o) => {
                model.get(&o);
            }
            Op::Purge(scope, mode) => model.purge(&scope, mode),
            Op::Sweep(budget) => model.sweep(budget, &probes),
        }
    }
    // Finish: run sweeps to completion; every answer stays the same and the markers go.
    model.sweep(usize::MAX, &probes);
    model.sweep(usize::MAX, &probes);
    model.all_answers(&probes);
    assert_eq!(model.store.stats().markers, 0);
    if !model.evicting {
        model.store.run_pending_tasks();
        assert_eq!(model.store.stats().entries as usize, model.live.len(), "swept store holds exactly the live set");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model_without_eviction(ops in prop::collection::vec(op(), 1..150)) {
        run(ops, 1 << 30);
    }

    #[test]
    fn store_matches_model_with_eviction(ops in prop::collection::vec(op(), 1..150)) {
        // Each entry weighs ~540 bytes: about five fit.
        run(ops, 3_000);
    }
}
