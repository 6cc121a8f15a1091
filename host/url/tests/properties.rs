//! Property tests of the normative rules: idempotence, equivalent spellings, re-parsing, the
//! prefix guarantee, agreement of prefix and URL escaping, and no panics on arbitrary input.
//!
//! URLs come from a model (`Model`) with a known canonical form, rendered in many equivalent
//! spellings (case, default port, escapes, dot-segments, fragment, empty query).

use edgepurge_url::{normalize, normalize_bytes, normalize_host, normalize_prefix, NormalizedUrl, UrlError};
use proptest::prelude::*;

/// One character of a path segment.
#[derive(Debug, Clone)]
enum Atom {
    /// An unreserved character: may be spelt raw or `%XX`, canonical raw.
    Unreserved(u8),
    /// A character kept raw (sub-delims, `:`, `@`).
    Raw(char),
    /// A byte that stays escaped: canonical `%XX`; spelt raw when the parser encodes it anyway.
    Escaped(u8),
    /// A non-ASCII character: spelt raw or as UTF-8 escapes, canonical upper-case escapes.
    NonAscii(char),
}

/// A URL with a known canonical form.
#[derive(Debug, Clone)]
struct Model {
    https: bool,
    /// (spelling, canonical) per label.
    labels: Vec<(String, String)>,
    port: Option<u16>,
    segments: Vec<Vec<Atom>>,
    trailing_slash: bool,
    query: Option<String>,
}

const UNRESERVED: &[u8] = b"ABCXYZabcxyz0189-._~";
const SUB_DELIMS: &[char] = &['!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@'];
/// Bytes that stay escaped, raw spelling allowed (the parser or we encode them).
const ENCODED_RAW_OK: &[u8] = b"\"<>`{}\\";
const ESCAPED_ONLY: &[u8] = b"/?#%\x00\x1f\x7f\x80\xff ";

fn atom() -> impl Strategy<Value = Atom> {
    prop_oneof![
        4 => prop::sample::select(UNRESERVED).prop_map(Atom::Unreserved),
        2 => prop::sample::select(SUB_DELIMS).prop_map(Atom::Raw),
        1 => prop::sample::select(ENCODED_RAW_OK).prop_map(Atom::Escaped),
        1 => prop::sample::select(ESCAPED_ONLY).prop_map(Atom::Escaped),
        1 => prop::sample::select(&['é', 'ü', '€', '例', '😀'][..]).prop_map(Atom::NonAscii),
    ]
}

fn label() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        4 => "[a-z][a-z0-9]{0,4}(-[a-z0-9]{1,3})?".prop_map(|l| (l.clone(), l)),
        1 => prop::sample::select(&[("bücher", "xn--bcher-kva"), ("BÜCHER", "xn--bcher-kva"), ("例え", "xn--r8jz45g")][..])
            .prop_map(|(s, c)| (s.to_string(), c.to_string())),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let piece = prop_oneof!["[a-zA-Z0-9=&/?:@!$()*+,;._~-]{1,4}", "%[0-9a-fA-F]{2}"];
    prop::collection::vec(piece, 1..5).prop_map(|v| v.concat())
}

fn model() -> impl Strategy<Value = Model> {
    (
        any::<bool>(),
        prop::collection::vec(label(), 1..4),
        prop_oneof![Just(None), (1u16..).prop_filter("not default", |p| *p != 80 && *p != 443).prop_map(Some)],
        prop::collection::vec(prop::collection::vec(atom(), 1..6), 0..5),
        any::<bool>(),
        prop::option::of(query()),
    )
        .prop_map(|(https, labels, port, segments, trailing_slash, query)| Model {
            https,
            labels,
            port,
            segments,
            trailing_slash,
            query,
        })
        .prop_filter("no dot-segments", |m| {
            m.segments.iter().all(|s| {
                let dots = s.iter().all(|a| matches!(a, Atom::Unreserved(b'.')));
                !(dots && s.len() <= 2)
            })
        })
}

/// A deterministic choice among `n` for position `i` of spelling `seed`.
fn pick(seed: u64, i: u64, n: u64) -> u64 {
    let x = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x ^ (x >> 31)) % n
}

fn hex(b: u8, upper: bool) -> String {
    if upper {
        format!("%{b:02X}")
    } else {
        format!("%{b:02x}")
    }
}

impl Model {
    fn canonical(&self) -> String {
        let mut s = format!("{}://", if self.https { "https" } else { "http" });
        s.push_str(&self.labels.iter().map(|l| l.1.as_str()).collect::<Vec<_>>().join("."));
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        let segs: Vec<String> = self.segments.iter().map(|seg| seg.iter().map(canonical_atom).collect()).collect();
        s.push('/');
        s.push_str(&segs.join("/"));
        if self.trailing_slash && !segs.is_empty() {
            s.push('/');
        }
        if let Some(q) = &self.query {
            s.push('?');
            s.push_str(q);
        }
        s
    }

    fn spell(&self, seed: u64) -> String {
        let mut i = 0u64;
        let mut next = |n: u64| {
            i += 1;
            pick(seed, i, n)
        };
        let scheme = if self.https { "https" } else { "http" };
        let mut s: String =
            scheme.chars().map(|c| if next(2) == 0 { c.to_ascii_uppercase() } else { c }).collect::<String>() + "://";
        let host = self.labels.iter().map(|l| l.0.as_str()).collect::<Vec<_>>().join(".");
        s.extend(host.chars().map(|c| if next(2) == 0 { c.to_ascii_uppercase() } else { c }));
        match (self.port, next(3)) {
            (Some(p), 0) => s.push_str(&format!(":0{p}")),
            (Some(p), _) => s.push_str(&format!(":{p}")),
            (None, 0) => s.push_str(if self.https { ":443" } else { ":80" }),
            (None, _) => {}
        }
        let mut path = String::new();
        for seg in &self.segments {
            match next(6) {
                0 => path.push_str("/."),
                1 => path.push_str("/%2E"),
                2 => path.push_str("/zz/%2e."),
                _ => {}
            }
            path.push('/');
            for a in seg {
                spell_atom(a, next(3), &mut path);
            }
        }
        if self.trailing_slash && !self.segments.is_empty() {
            path.push('/');
        }
        if path.is_empty() && next(2) == 0 {
            path.push('/');
        }
        s.push_str(&path);
        match &self.query {
            Some(q) => s.push_str(&format!("?{q}")),
            None if next(3) == 0 => s.push('?'),
            None => {}
        }
        match next(3) {
            0 => s.push_str("#frag/../x?y"),
            1 => s.push('#'),
            _ => {}
        }
        s
    }
}

fn canonical_atom(a: &Atom) -> String {
    match a {
        Atom::Unreserved(b) => char::from(*b).to_string(),
        Atom::Raw(c) => c.to_string(),
        Atom::Escaped(b) => hex(*b, true),
        Atom::NonAscii(c) => c.to_string().bytes().map(|b| hex(b, true)).collect(),
    }
}

fn spell_atom(a: &Atom, choice: u64, out: &mut String) {
    match a {
        Atom::Unreserved(b) if choice == 0 => out.push(char::from(*b)),
        Atom::Unreserved(b) | Atom::Escaped(b) => {
            if choice == 2 && ENCODED_RAW_OK.contains(b) {
                out.push(char::from(*b));
            } else {
                out.push_str(&hex(*b, choice == 1));
            }
        }
        Atom::Raw(c) => out.push(*c),
        Atom::NonAscii(c) if choice == 0 => out.push(*c),
        Atom::NonAscii(c) => out.extend(c.to_string().bytes().map(|b| hex(b, choice == 1))),
    }
}

/// Offset of the path in a normalised URL.
fn path_start(n: &NormalizedUrl) -> usize {
    n.as_str().len() - n.path().len() - n.query().map_or(0, |q| q.len() + 1)
}

/// Every prefix reaching past the host normalises to itself; shorter ones are refused.
fn check_prefixes(n: &NormalizedUrl) -> Result<(), TestCaseError> {
    let s = n.as_str();
    for k in 0..=s.len() {
        let p = &s[..k];
        let got = normalize_prefix(p);
        if k > path_start(n) {
            prop_assert_eq!(got.as_ref().map(|p| p.as_str()), Ok(p), "prefix {:?} of {:?}", p, s);
            prop_assert!(got.unwrap().is_prefix_of(n));
        } else {
            prop_assert!(got.is_err(), "prefix {:?} of {:?} should be refused", p, s);
        }
    }
    Ok(())
}

/// Whether the last raw path segment would be a dot-segment.
fn ends_in_dot_segment(spelling: &str) -> bool {
    let path = spelling.split(['?', '#']).next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default().to_ascii_lowercase().replace("%2e", ".");
    last == "." || last == ".."
}

/// A piece of URL-ish noise: an escape, or one character of many kinds.
fn noise_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "%[0-9a-fA-F]{2}",
        "[a-zA-Z0-9.:/?#@%\\[\\]\\\\'\"<>{}|^`~é例€!$&()*+,;=_-]",
        prop::sample::select(&[".", "..", "%2e", "%2E%2e", "/./", "/../"][..]).prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn spellings_reach_the_canonical_form(m in model(), a in any::<u64>(), b in any::<u64>()) {
        let (sa, sb) = (m.spell(a), m.spell(b));
        let na = normalize(&sa).map_err(|e| TestCaseError::fail(format!("{sa}: {e}")))?;
        let nb = normalize(&sb).map_err(|e| TestCaseError::fail(format!("{sb}: {e}")))?;
        prop_assert_eq!(na.as_str(), m.canonical(), "spelling {}", sa);
        prop_assert_eq!(&na, &nb, "spellings {} and {}", sa, sb);
    }

    #[test]
    fn idempotent_and_parses_again(m in model(), seed in any::<u64>()) {
        let n = normalize(&m.spell(seed)).unwrap();
        prop_assert_eq!(normalize(n.as_str()), Ok(n.clone()));
        prop_assert_eq!(normalize_bytes(n.as_str().as_bytes()), Ok(n.clone()));
        let parsed = url::Url::parse(n.as_str()).unwrap();
        prop_assert_eq!(parsed.as_str(), n.as_str());
        prop_assert_eq!(normalize_host(n.host()), Ok(n.host().to_string()));
    }

    #[test]
    fn prefixes_of_normalised_urls(m in model(), seed in any::<u64>()) {
        check_prefixes(&normalize(&m.spell(seed)).unwrap())?;
    }

    #[test]
    fn prefix_escaping_agrees_with_url_escaping(m in model(), seed in any::<u64>()) {
        let spelling = m.spell(seed);
        let u = spelling.split('#').next().unwrap();
        let has_path = u.splitn(4, '/').nth(3).is_some() || u.contains('?');
        let empty_query = u.ends_with('?');
        if has_path && !empty_query && !ends_in_dot_segment(u) {
            let (p, n) = (normalize_prefix(u).unwrap(), normalize(u).unwrap());
            prop_assert_eq!(p.as_str(), n.as_str(), "{}", u);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(n) = normalize_bytes(&bytes) {
            prop_assert_eq!(normalize(n.as_str()), Ok(n.clone()));
        }
        let s = String::from_utf8_lossy(&bytes);
        let _ = normalize_prefix(&s);
        let _ = normalize_host(&s);
    }

    #[test]
    fn url_like_noise_never_panics(
        scheme in prop_oneof![
            3 => prop::sample::select(&["http://", "HTTPS://", "hTTp://"][..]),
            1 => prop::sample::select(&["http:", "http:/", "https:///", "ftp://", "", "//"][..]),
        ],
        host in prop_oneof![
            3 => "[a-zA-Z][a-zA-Z0-9é例]{0,6}(\\.[a-zA-Z0-9]{1,5})?(:[0-9]{1,3})?",
            1 => "[a-zA-Z0-9.é例\\[\\]:@%-]{0,12}",
        ],
        start in prop::sample::select(&["/", "?", "#", "", "\\"][..]),
        pieces in prop::collection::vec(noise_piece(), 0..30),
    ) {
        let rest = format!("{start}{}", pieces.concat());
        let input = format!("{scheme}{host}{rest}");
        if let Ok(n) = normalize(&input) {
            prop_assert_eq!(normalize(n.as_str()), Ok(n.clone()), "{}", input);
            prop_assert!(url::Url::parse(n.as_str()).is_ok());
            check_prefixes(&n)?;
        }
        if let Ok(p) = normalize_prefix(&input) {
            prop_assert_eq!(normalize_prefix(p.as_str()), Ok(p.clone()), "{}", input);
        }
        if let Ok(h) = normalize_host(&host) {
            prop_assert_eq!(normalize_host(&h), Ok(h.clone()));
        }
    }
}

#[test]
fn too_long_never_panics_and_is_refused() {
    let long = vec![b'a'; 100_000];
    assert!(matches!(normalize_bytes(&long), Err(UrlError::TooLong { len: 100_000, max: 8192 })));
}
