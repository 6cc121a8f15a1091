//! Purge markers: what makes prefix, tag, host and global purges O(1) in the cache size.
//!
//! A purge does not touch entries. It takes the next value `p` of the store's sequence and
//! records it in a marker for its scope: a byte radix tree for URL prefixes, hash maps for exact
//! URLs, hosts and tags, one global pair. Each marker holds the sequence of the latest hard and
//! the latest soft purge of its scope ([`Pair`]). An entry stored at sequence `s` is hard-purged
//! if any marker that applies to it — every trie node on its URL's path (the prefixes of the
//! URL), its URL's, its host's, each of its tags', the global one — has `hard > s`; soft-purged
//! likewise with `soft`. Checking costs one trie walk over the URL's bytes plus one hash lookup
//! for the URL, the host and each tag (each skipped while its map is empty): it does not depend
//! on the cache size.
//!
//! Exact-URL markers exist although exact purges also act on the entries directly: they cover
//! entries being inserted during the purge and fills that began before it.
//!
//! Markers come in generations ([`MarkerSet`]): the sweeper seals the current generation at the
//! start of a pass, applies it to every entry (removing hard-purged ones, flagging soft-purged
//! ones) and drops it, in O(1), when the pass completes.

/// Keyed at random per process (see the dependency's note in Cargo.toml).
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

use crate::{PurgeMode, Scope};

/// The latest hard and soft purge sequence of one scope (0: never).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pair {
    pub(crate) hard: u64,
    pub(crate) soft: u64,
}

impl Pair {
    /// Raises the field of `mode` to `seq`.
    fn record(&mut self, mode: PurgeMode, seq: u64) {
        let field = match mode {
            PurgeMode::Hard => &mut self.hard,
            PurgeMode::Soft => &mut self.soft,
        };
        *field = (*field).max(seq);
    }

    /// The field-wise maximum.
    pub(crate) fn merge(&mut self, other: Pair) {
        self.hard = self.hard.max(other.hard);
        self.soft = self.soft.max(other.soft);
    }

    fn is_set(&self) -> bool {
        self.hard != 0 || self.soft != 0
    }
}

/// What the markers say about an entry stored at some sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No marker newer than the entry.
    Fresh,
    /// A soft purge newer than the entry, no hard one.
    Soft,
    /// A hard purge newer than the entry.
    Hard,
}

impl Pair {
    /// The verdict for an entry stored at `stored_at`.
    pub(crate) fn verdict(&self, stored_at: u64) -> Verdict {
        if self.hard > stored_at {
            Verdict::Hard
        } else if self.soft > stored_at {
            Verdict::Soft
        } else {
            Verdict::Fresh
        }
    }
}

/// A node of the byte radix tree: its path from the root spells a prefix.
#[derive(Debug, Default)]
struct Node {
    /// Bytes from the parent to this node (empty only at the root).
    label: Box<[u8]>,
    /// Purges of every URL starting with this node's path.
    prefix: Pair,
    /// The first label byte of each child, sorted and distinct: searched without touching the
    /// children themselves.
    firsts: Vec<u8>,
    /// Children, in the order of `firsts`.
    children: Vec<Node>,
}

impl Node {
    fn leaf(label: &[u8]) -> Self {
        Node { label: label.into(), ..Node::default() }
    }

    fn child(&self, first: u8) -> Option<&Node> {
        self.firsts.binary_search(&first).ok().map(|pos| &self.children[pos])
    }

    /// The node whose path is this node's path followed by `rest`, created if missing.
    fn descend_or_create(&mut self, rest: &[u8], created: &mut usize) -> &mut Node {
        let Some(&first) = rest.first() else { return self };
        match self.firsts.binary_search(&first) {
            Err(pos) => {
                *created += 1;
                self.firsts.insert(pos, first);
                self.children.insert(pos, Node::leaf(rest));
                &mut self.children[pos]
            }
            Ok(pos) => {
                let child = &mut self.children[pos];
                let common = common_prefix(&child.label, rest);
                if common < child.label.len() {
                    // Split the child: a new node for the common part, the old child below it.
                    *created += 1;
                    let mut old = std::mem::take(child);
                    let tail: Box<[u8]> = old.label[common..].into();
                    child.label = old.label[..common].into();
                    old.label = tail;
                    child.firsts.push(old.label[0]);
                    child.children.push(old);
                }
                child.descend_or_create(&rest[common..], created)
            }
        }
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A byte radix tree of prefix markers.
#[derive(Debug, Default)]
pub(crate) struct Trie {
    root: Node,
    nodes: usize,
}

impl Trie {
    /// Records a purge of every URL starting with `prefix`. Costs O(len(prefix)) plus a child
    /// insertion.
    pub(crate) fn record(&mut self, prefix: &str, mode: PurgeMode, seq: u64) {
        self.root.descend_or_create(prefix.as_bytes(), &mut self.nodes).prefix.record(mode, seq);
    }

    /// The newest purges of prefixes of `url` (the markers on its path).
    pub(crate) fn check(&self, url: &str) -> Pair {
        let mut node = &self.root;
        let mut acc = node.prefix;
        let mut rest = url.as_bytes();
        while let Some(child) = rest.first().and_then(|&first| node.child(first)) {
            let Some(tail) = rest.strip_prefix(&*child.label) else { break };
            rest = tail;
            node = child;
            acc.merge(node.prefix);
        }
        acc
    }

    /// True if no prefix purge was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.nodes == 0 && !self.root.prefix.is_set()
    }

    /// Number of nodes holding or leading to markers.
    pub(crate) fn len(&self) -> usize {
        self.nodes + usize::from(self.root.prefix.is_set())
    }
}

/// One generation of markers.
#[derive(Debug, Default)]
pub(crate) struct Markers {
    trie: Trie,
    urls: HashMap<Box<str>, Pair>,
    hosts: HashMap<Box<str>, Pair>,
    tags: HashMap<Box<str>, Pair>,
    global: Pair,
}

impl Markers {
    /// Records a purge of `scope` at `seq`.
    pub(crate) fn record(&mut self, scope: Scope, mode: PurgeMode, seq: u64) {
        match scope {
            Scope::Url(url) => self.urls.entry(url.into_boxed_str()).or_default().record(mode, seq),
            Scope::Prefix(prefix) => self.trie.record(&prefix, mode, seq),
            Scope::Host(host) => self.hosts.entry(host.into_boxed_str()).or_default().record(mode, seq),
            Scope::Tag(tag) => self.tags.entry(tag.into_boxed_str()).or_default().record(mode, seq),
            Scope::Everything => self.global.record(mode, seq),
        }
    }

    /// The newest purges applying to an entry with this URL, host and tags.
    pub(crate) fn check<'a>(&self, url: &str, host: &str, tags: impl IntoIterator<Item = &'a str>) -> Pair {
        let mut acc = self.global;
        if !self.trie.is_empty() {
            acc.merge(self.trie.check(url));
        }
        if !self.urls.is_empty() {
            if let Some(p) = self.urls.get(url) {
                acc.merge(*p);
            }
        }
        if !self.hosts.is_empty() {
            if let Some(p) = self.hosts.get(host) {
                acc.merge(*p);
            }
        }
        if !self.tags.is_empty() {
            for tag in tags {
                if let Some(p) = self.tags.get(tag) {
                    acc.merge(*p);
                }
            }
        }
        acc
    }

    /// True if no purge was recorded in this generation.
    pub(crate) fn is_empty(&self) -> bool {
        self.trie.is_empty()
            && self.urls.is_empty()
            && self.hosts.is_empty()
            && self.tags.is_empty()
            && !self.global.is_set()
    }

    /// Number of markers (trie nodes, URLs, hosts, tags, global) for the stats.
    pub(crate) fn len(&self) -> usize {
        self.trie.len() + self.urls.len() + self.hosts.len() + self.tags.len() + usize::from(self.global.is_set())
    }
}

/// The live marker generations and the floor below which markers were dropped.
#[derive(Debug, Default)]
pub(crate) struct MarkerSet {
    /// Where purges are recorded.
    pub(crate) current: Markers,
    /// The generation the running sweep pass is applying, if any.
    pub(crate) sealed: Option<Markers>,
    /// Markers with sequences `<= floor` have been dropped: an entry whose sequence is below the
    /// floor can no longer be checked, so inserts claiming one are refused.
    pub(crate) floor: u64,
}

impl MarkerSet {
    /// The newest purges applying to an entry, over every live generation.
    pub(crate) fn check<'a>(&self, url: &str, host: &str, tags: impl IntoIterator<Item = &'a str> + Clone) -> Pair {
        let mut acc = self.current.check(url, host, tags.clone());
        if let Some(sealed) = &self.sealed {
            acc.merge(sealed.check(url, host, tags));
        }
        acc
    }

    /// Number of live markers.
    pub(crate) fn len(&self) -> usize {
        self.current.len() + self.sealed.as_ref().map_or(0, Markers::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(marks: &[(&str, u64)]) -> Trie {
        let mut t = Trie::default();
        for &(key, seq) in marks {
            t.record(key, PurgeMode::Hard, seq);
        }
        t
    }

    #[test]
    fn prefix_markers_apply_to_every_extension() {
        let t = trie(&[("https://a/img", 5), ("https://a/im", 3), ("https://b/", 7)]);
        assert_eq!(t.check("https://a/img/1.png").hard, 5);
        assert_eq!(t.check("https://a/img").hard, 5);
        assert_eq!(t.check("https://a/imx").hard, 3);
        assert_eq!(t.check("https://a/i").hard, 0);
        assert_eq!(t.check("https://b/").hard, 7);
        assert_eq!(t.check("https://c/").hard, 0);
        assert_eq!(t.check("").hard, 0);
    }

    #[test]
    fn exact_markers_apply_only_to_their_url() {
        let mut m = Markers::default();
        m.record(Scope::Url("https://a/x".into()), PurgeMode::Hard, 4);
        m.record(Scope::Prefix("https://a/xy".into()), PurgeMode::Hard, 2);
        assert_eq!(m.check("https://a/x", "a", []).hard, 4);
        assert_eq!(m.check("https://a/xy", "a", []).hard, 2);
        assert_eq!(m.check("https://a/", "a", []).hard, 0);
        assert_eq!(m.check("https://a/x?q", "a", []).hard, 0);
    }

    #[test]
    fn splits_keep_earlier_markers() {
        // Insert long first, then a shorter key that splits it, then a sibling.
        let t = trie(&[("abcdef", 1), ("abc", 2), ("abx", 3)]);
        assert_eq!(t.check("abcdefg"), Pair { hard: 2, soft: 0 });
        assert_eq!(t.check("abcd").hard, 2);
        assert_eq!(t.check("abxx").hard, 3);
        assert_eq!(t.check("ab").hard, 0);
        // Root-level prefix "" purges everything.
        let mut t = t;
        t.record("", PurgeMode::Soft, 9);
        assert_eq!(t.check("zzz"), Pair { hard: 0, soft: 9 });
    }

    #[test]
    fn markers_combine_scopes_and_generations() {
        let mut set = MarkerSet::default();
        set.current.record(Scope::Tag("t1".into()), PurgeMode::Soft, 3);
        set.current.record(Scope::Host("h".into()), PurgeMode::Hard, 4);
        assert_eq!(set.check("u", "h", ["t1"]), Pair { hard: 4, soft: 3 });
        assert_eq!(set.check("u", "other", ["t1", "t2"]), Pair { hard: 0, soft: 3 });
        set.sealed = Some(std::mem::take(&mut set.current));
        set.current.record(Scope::Everything, PurgeMode::Soft, 6);
        assert_eq!(set.check("u", "h", ["t2"]), Pair { hard: 4, soft: 6 });
        assert_eq!(Pair { hard: 4, soft: 6 }.verdict(3), Verdict::Hard);
        assert_eq!(Pair { hard: 4, soft: 6 }.verdict(4), Verdict::Soft);
        assert_eq!(Pair { hard: 4, soft: 6 }.verdict(6), Verdict::Fresh);
        assert!(!set.current.is_empty());
        assert!(Markers::default().is_empty());
    }
}
