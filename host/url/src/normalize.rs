//! The normalisation itself: checks, WHATWG parsing with the `url` crate, then what WHATWG
//! does not do (escape normalisation, dropping the fragment and an empty query). Prefixes and
//! hosts reuse the same steps.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::normalized::Layout;
use crate::{check, NormalizedPrefix, NormalizedUrl, Refused, UrlError};

/// The characters the `url` crate percent-encodes in a path (WHATWG path percent-encode set).
/// Used for the trailing partial segment of a prefix, which we encode ourselves; the property
/// tests check that it agrees with the parser.
const PATH: &AsciiSet =
    &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`').add(b'#').add(b'?').add(b'{').add(b'}');

/// The characters the `url` crate percent-encodes in the query of an http(s) URL (WHATWG
/// special-query percent-encode set).
const SPECIAL_QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'<').add(b'>').add(b'\'');

/// Normalises a full URL; see the crate docs for the rules.
pub(crate) fn url(input: &str, max: usize) -> Result<NormalizedUrl, UrlError> {
    check::length(input.len(), max)?;
    if let Some(out) = already_normal(input) {
        return Ok(out);
    }
    parse_url(input, max)
}

/// [`url`] of a string the caller gives up: when it is already in normal form (the common case
/// of a purge target that control normalised, arriving at every edge) it becomes the result
/// without a copy.
pub(crate) fn url_owned(input: String, max: usize) -> Result<NormalizedUrl, Refused> {
    if let Err(error) = check::length(input.len(), max) {
        return Err(Refused { error, input });
    }
    match normal_layout(&input) {
        Some(layout) => Ok(NormalizedUrl::from_layout(input, layout)),
        None => parse_url(&input, max).map_err(|error| Refused { error, input }),
    }
}

/// `input` as it is when it is already in normal form; see [`normal_layout`].
fn already_normal(input: &str) -> Option<NormalizedUrl> {
    normal_layout(input).map(|layout| NormalizedUrl::from_layout(input.to_owned(), layout))
}

/// Where the parts of `input` are when it is already in normal form, the common case on the edge's request
/// path, without the WHATWG parser (a tenth of a cache hit's CPU); `None` sends it through
/// [`parse_url`]. Deliberately narrow, so the answer is always what the parser gives (a
/// property test checks it): lower-case `[a-z0-9-]` host labels, the last starting with a
/// letter (no IPv4 number forms, no IDNA, no `xn--`); a non-default port without a leading
/// zero; a path and a non-empty query of characters neither the parser nor the escape rules
/// change (no `%`, no `#`, no `'` in the query), with no `.` or `..` segments.
fn normal_layout(input: &str) -> Option<Layout> {
    // One pass of byte tests per part: this runs for every task of a bulk purge on every edge.
    let bytes = input.as_bytes();
    let (scheme_end, default_port) = if bytes.starts_with(b"http://") {
        (4, 80)
    } else if bytes.starts_with(b"https://") {
        (5, 443)
    } else {
        return None;
    };
    let authority_start = scheme_end + 3;
    let path_start = authority_start + bytes[authority_start..].iter().position(|&b| b == b'/')?;
    let authority = &bytes[authority_start..path_start];
    let (host, port) = match authority.iter().position(|&b| b == b':') {
        Some(colon) => (&authority[..colon], Some(&authority[colon + 1..])),
        None => (authority, None),
    };
    if !plain_host(host) {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if p.len() <= 5 && matches!(p.first(), Some(b'1'..=b'9')) && p.iter().all(u8::is_ascii_digit) => {
            let value = p.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
            Some(u16::try_from(value).ok().filter(|&p| p != default_port)?)
        }
        Some(_) => return None,
    };
    let rest = &bytes[path_start..];
    let (path, query) = match rest.iter().position(|&b| b == b'?') {
        Some(mark) => (&rest[..mark], Some(&rest[mark + 1..])),
        None => (rest, None),
    };
    let query_ok = query.is_none_or(|q| !q.is_empty() && q.iter().all(|&b| PLAIN[usize::from(b)] || b == b'?'));
    if !plain_path(path) || !query_ok {
        return None;
    }
    // The output `from_parts` would assemble is `input` itself: the default port was refused
    // above and a port is written as given (no leading zero); only the offsets are needed.
    let host_end = authority_start + host.len();
    let query_at = query.map(|_| path_start + path.len());
    Some(Layout { scheme_end, host_end, port, path_start, query_at })
}

/// Bytes neither the parser nor the escape rules change in a path or query.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'(')
            || matches!(c, b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@' | b'/');
        b += 1;
    }
    table
};

/// Lower-case `[a-z0-9-]` labels, none empty or `xn--`, the last starting with a letter (no
/// IPv4 number forms, no IDNA).
fn plain_host(host: &[u8]) -> bool {
    let mut label_start = 0;
    for (i, &b) in host.iter().enumerate() {
        if b == b'.' {
            if !plain_label(&host[label_start..i]) {
                return false;
            }
            label_start = i + 1;
        } else if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return false;
        }
    }
    let last = &host[label_start..];
    plain_label(last) && last[0].is_ascii_lowercase()
}

/// A label already checked for its bytes: not empty, not an IDNA `xn--` label.
fn plain_label(label: &[u8]) -> bool {
    !label.is_empty() && !label.starts_with(b"xn--")
}

/// Plain bytes (and `'`), with no `.` or `..` segment.
fn plain_path(path: &[u8]) -> bool {
    let mut segment_start = 0;
    for (i, &b) in path.iter().enumerate() {
        if b == b'/' {
            if matches!(&path[segment_start..i], b"." | b"..") {
                return false;
            }
            segment_start = i + 1;
        } else if !(PLAIN[usize::from(b)] || b == b'\'') {
            return false;
        }
    }
    !matches!(&path[segment_start..], b"." | b"..")
}

/// The full normalisation: checks, the WHATWG parser, escapes.
fn parse_url(input: &str, max: usize) -> Result<NormalizedUrl, UrlError> {
    check::chars(input)?;
    check::percent(input, false)?;
    let input = check::backslashes(input);
    check::split(&input)?;
    let parsed = url::Url::parse(&input).map_err(UrlError::from_parse)?;
    let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or(UrlError::EmptyHost)?;
    let path = escapes(parsed.path(), false);
    let query = parsed.query().filter(|q| !q.is_empty());
    let out = NormalizedUrl::from_parts(parsed.scheme(), host, parsed.port(), &path, query);
    check::output_length(out.as_str().len(), max)?;
    Ok(out)
}

/// Normalises a prefix: the part up to the last complete path segment (or up to the `?`) as a
/// URL, the rest kept as given apart from escaping; see the crate docs.
pub(crate) fn prefix(input: &str, max: usize) -> Result<NormalizedPrefix, UrlError> {
    check::length(input.len(), max)?;
    check::chars(input)?;
    check::percent(input, true)?;
    let input = check::backslashes(input);
    let split = check::split(&input)?;
    if split.rest.is_empty() {
        return Err(UrlError::PrefixEndsInAuthority);
    }
    let rest_at = input.len() - split.rest.len();
    let rest = split.rest.split('#').next().unwrap_or_default();
    let (head, tail, in_query) = match rest.split_once('?') {
        Some((path, query)) => (&input[..rest_at + path.len()], query, true),
        None => {
            let cut = rest.rfind('/').map_or(0, |i| i + 1);
            (&input[..rest_at + cut], &rest[cut..], false)
        }
    };
    let head = url(head, max)?;
    debug_assert!(head.query().is_none() && (in_query || head.as_str().ends_with('/')));
    let mut s = String::with_capacity(head.as_str().len() + tail.len() + 1);
    s.push_str(head.as_str());
    if in_query {
        s.push('?');
        s.extend(utf8_percent_encode(tail, SPECIAL_QUERY));
    } else {
        s.push_str(&escapes(&utf8_percent_encode(tail, PATH).to_string(), true));
    }
    check::output_length(s.len(), max)?;
    Ok(NormalizedPrefix::new(&head, s))
}

/// Normalises a bare host exactly as the host of a URL is normalised.
pub(crate) fn host(input: &str, max: usize) -> Result<String, UrlError> {
    check::length(input.len(), max)?;
    check::chars(input)?;
    check::percent(input, false)?;
    if input.is_empty() {
        return Err(UrlError::EmptyHost);
    }
    let bracket_end = if input.starts_with('[') { input.find(']') } else { None };
    for (i, c) in input.char_indices() {
        let in_brackets = bracket_end.is_some_and(|end| i < end);
        let after_brackets = bracket_end.is_some_and(|end| i > end);
        if after_brackets || matches!(c, '/' | '?' | '#' | '@' | '\\') || (c == ':' && !in_brackets) {
            return Err(UrlError::NotAHost { found: c });
        }
    }
    let parsed = url::Url::parse(&format!("http://{input}/")).map_err(UrlError::from_parse)?;
    let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or(UrlError::EmptyHost)?;
    check::output_length(host.len(), max)?;
    Ok(host.to_owned())
}

/// Normalises percent-escapes: `%XX` of an unreserved character (`A-Z a-z 0-9 - . _ ~`) is
/// decoded, every other `%xx` gets upper-case hex digits. With `partial_tail`, a trailing `%H`
/// gets an upper-case digit (a trailing `%` stays). Everything else is copied.
fn escapes(s: &str, partial_tail: bool) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while let Some(off) = s[i..].find('%') {
        let at = i + off;
        out.push_str(&s[copied..at]);
        match (b.get(at + 1), b.get(at + 2)) {
            (Some(&h), Some(&l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                let value = hex(h) << 4 | hex(l);
                if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(value));
                } else {
                    out.extend(['%', char::from(h.to_ascii_uppercase()), char::from(l.to_ascii_uppercase())]);
                }
                i = at + 3;
            }
            (Some(&h), None) if partial_tail && h.is_ascii_hexdigit() => {
                out.extend(['%', char::from(h.to_ascii_uppercase())]);
                i = at + 2;
            }
            _ => {
                out.push('%');
                i = at + 1;
            }
        }
        copied = i;
    }
    out.push_str(&s[copied..]);
    out
}

/// The value of one hex digit.
fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn common_request_urls_take_the_fast_path() {
        for u in
            ["http://www.example.com/a/b.png?v=2&x=1", "https://a.test:8443/", "http://cdn-1.example.com/~me/a,b;c=d"]
        {
            assert_eq!(already_normal(u).map(|n| n.as_str().to_owned()), Some(u.to_owned()), "{u}");
        }
        for u in [
            "http://A.com/",
            "http://a.com:80/",
            "http://1.2.3.4/",
            "http://a.com/%7e",
            "http://a.com/./x",
            "http://a.com/?",
        ] {
            assert!(already_normal(u).is_none(), "{u}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        /// Plain URLs do take the fast path (so the agreement below is exercised).
        #[test]
        fn plain_urls_take_the_fast_path(input in "https?://[a-z][a-z0-9]{0,5}(\\.[a-z][a-z0-9]{0,3}){0,2}(:[1-9][0-9]{3})?(/[a-zA-Z0-9_~-]{1,5}){1,3}") {
            let fast = already_normal(&input).expect("a plain URL takes the fast path");
            let slow = parse_url(&input, usize::MAX).unwrap();
            prop_assert_eq!(fast.as_str(), slow.as_str());
        }

        /// Whatever the fast path answers is exactly what the full normalisation answers.
        #[test]
        fn the_fast_path_agrees_with_the_parser(
            input in "(https?|HTTP)://([a-z0-9-]{0,4}|xn--a|0x1|[A-Z]|[0-9]{1,3})(\\.([a-z0-9-]{0,4}|[0-9]{1,3})){0,3}(:[0-9]{0,6})?(/([a-zA-Z0-9._~!$&'()*+,;=:@-]{0,4}|\\.|\\.\\.|%2e|%7E|\\\\)){0,4}(\\?[a-zA-Z0-9'?/=&.%#-]{0,6})?(#x)?"
        ) {
            if let Some(fast) = already_normal(&input) {
                let slow = parse_url(&input, usize::MAX).expect("the fast path accepted what the parser refuses");
                prop_assert_eq!(fast.as_str(), slow.as_str());
                prop_assert_eq!((fast.scheme(), fast.host(), fast.port()), (slow.scheme(), slow.host(), slow.port()));
                prop_assert_eq!((fast.path(), fast.query()), (slow.path(), slow.query()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = crate::DEFAULT_MAX_LEN;

    fn n(s: &str) -> String {
        url(s, MAX).map(|u| u.into_string()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn p(s: &str) -> String {
        prefix(s, MAX).map(|u| u.into_string()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn escape_rules() {
        assert_eq!(escapes("/%7e%7E%41%2d%2E%5f%30", false), "/~~A-._0");
        assert_eq!(escapes("/%2f%c3%a9%25%20", false), "/%2F%C3%A9%25%20");
        assert_eq!(escapes("/a%e", true), "/a%E");
        assert_eq!(escapes("/a%", true), "/a%");
        assert_eq!(escapes("plain", false), "plain");
    }

    #[test]
    fn scheme_and_host_case() {
        assert_eq!(n("HTTP://EXAMPLE.Com/A"), "http://example.com/A");
        assert_eq!(n("hTtPs://Example.com/"), "https://example.com/");
    }

    #[test]
    fn international_and_ip_hosts() {
        assert_eq!(n("http://Bücher.Example/"), "http://xn--bcher-kva.example/");
        assert_eq!(n("http://%41.com/"), "http://a.com/");
        assert_eq!(n("http://[0:0::1]:8080/"), "http://[::1]:8080/");
        assert_eq!(n("http://0x7f.1/"), "http://127.0.0.1/");
    }

    #[test]
    fn default_ports_dropped_others_kept() {
        assert_eq!(n("http://a.com:80/"), "http://a.com/");
        assert_eq!(n("https://a.com:443/"), "https://a.com/");
        assert_eq!(n("http://a.com:443/"), "http://a.com:443/");
        assert_eq!(n("https://a.com:80/"), "https://a.com:80/");
        assert_eq!(n("http://a.com:08080/"), "http://a.com:8080/");
        assert_eq!(n("http://a.com:/"), "http://a.com/");
        assert_eq!(n("http://a.com./"), "http://a.com./");
    }

    #[test]
    fn empty_path_and_dot_segments() {
        assert_eq!(n("http://a.com"), "http://a.com/");
        assert_eq!(n("http://a.com?x"), "http://a.com/?x");
        assert_eq!(n("http://a.com/a/./b/../c"), "http://a.com/a/c");
        assert_eq!(n("http://a.com/../../x"), "http://a.com/x");
        assert_eq!(n("http://a.com/a/%2e%2E/b/.%2e/c/"), "http://a.com/c/");
        assert_eq!(n("http://a.com/a/b/.."), "http://a.com/a/");
    }

    #[test]
    fn percent_encoding_normalised_in_path() {
        assert_eq!(n("http://a.com/%7euser/%7Efoo"), "http://a.com/~user/~foo");
        assert_eq!(n("http://a.com/a%2fb%2Fc"), "http://a.com/a%2Fb%2Fc");
        assert_eq!(n("http://a.com/%41%5a%61%2d"), "http://a.com/AZa-");
        assert_eq!(n("http://a.com/é"), "http://a.com/%C3%A9");
        assert_eq!(n("http://a.com/%c3%a9"), "http://a.com/%C3%A9");
        assert_eq!(n("http://a.com/a\"b<c>{d}`"), "http://a.com/a%22b%3Cc%3E%7Bd%7D%60");
        assert_eq!(n("http://a.com/a\\b"), "http://a.com/a%5Cb");
    }

    #[test]
    fn fragment_dropped_query_kept() {
        assert_eq!(n("http://a.com/x#frag"), "http://a.com/x");
        assert_eq!(n("http://a.com/x?b=2&a=1&A=%7e#f"), "http://a.com/x?b=2&a=1&A=%7e");
        assert_eq!(n("http://a.com/x?"), "http://a.com/x");
        assert_eq!(n("http://a.com/x?#f"), "http://a.com/x");
        assert_eq!(n("http://a.com/x??"), "http://a.com/x??");
        assert_eq!(n("http://a.com/x?a\\b/../c"), "http://a.com/x?a\\b/../c");
        assert_eq!(n("http://a.com/x?q='é'"), "http://a.com/x?q=%27%C3%A9%27");
    }

    #[test]
    fn rejections() {
        let e = |s: &str| url(s, MAX).unwrap_err();
        assert_eq!(e("/a/b"), UrlError::NotAbsolute);
        assert_eq!(e("a.com/b"), UrlError::NotAbsolute);
        assert_eq!(e("http:a.com"), UrlError::NotAbsolute);
        assert_eq!(e("ftp://a.com/"), UrlError::UnsupportedScheme { scheme: "ftp".into() });
        assert_eq!(e("http://"), UrlError::EmptyHost);
        assert_eq!(e("http://:8080/x"), UrlError::EmptyHost);
        assert_eq!(e("http://a.com/a b"), UrlError::ControlOrWhitespace { ch: ' ', at: 14 });
        assert_eq!(e("http://a.com/%g0"), UrlError::InvalidPercentEncoding { at: 13 });
        assert_eq!(e("http://a.com/#%"), UrlError::InvalidPercentEncoding { at: 14 });
        assert_eq!(e("http://user:pw@a.com/"), UrlError::UserInfo);
        assert_eq!(e("http://a.com:99999/"), UrlError::InvalidPort);
        assert!(matches!(e("http://a..b%00/"), UrlError::InvalidHost { .. }));
        assert!(matches!(e("http://a\\b/"), UrlError::InvalidHost { .. }));
        assert!(matches!(e("http://[::1/"), UrlError::InvalidHost { .. }));
    }

    #[test]
    fn length_limits() {
        assert_eq!(url("http://a.com/xxxx", 16), Err(UrlError::TooLong { len: 17, max: 16 }));
        assert!(url("http://a.com/xxx", 16).is_ok());
        assert_eq!(url("http://a.com/é", 16), Err(UrlError::NormalizedTooLong { len: 19, max: 16 }));
    }

    #[test]
    fn prefixes_keep_their_tail() {
        assert_eq!(p("HTTP://A.com:80/img/"), "http://a.com/img/");
        assert_eq!(p("http://a.com/img/./x/../"), "http://a.com/img/");
        assert_eq!(p("http://a.com/img/.."), "http://a.com/img/..");
        assert_eq!(p("http://a.com/img/."), "http://a.com/img/.");
        assert_eq!(p("http://a.com/img/%7eab%2f%e"), "http://a.com/img/~ab%2F%E");
        assert_eq!(p("http://a.com/img/%"), "http://a.com/img/%");
        assert_eq!(p("http://a.com/img/é"), "http://a.com/img/%C3%A9");
        assert_eq!(p("http://a.com/x?"), "http://a.com/x?");
        assert_eq!(p("http://a.com/x/../y?a=%7e&b=%e"), "http://a.com/y?a=%7e&b=%e");
        assert_eq!(p("http://a.com?q"), "http://a.com/?q");
        assert_eq!(p("http://a.com#f"), "http://a.com/");
        assert_eq!(p("http://a.com/x#frag"), "http://a.com/x");
        assert_eq!(p("http://a.com/a\\b"), "http://a.com/a%5Cb");
    }

    #[test]
    fn prefix_rejections() {
        assert_eq!(prefix("http://a.com", MAX), Err(UrlError::PrefixEndsInAuthority));
        assert_eq!(prefix("http://a.com:80", MAX), Err(UrlError::PrefixEndsInAuthority));
        assert_eq!(prefix("http://a.c", MAX), Err(UrlError::PrefixEndsInAuthority));
        assert_eq!(prefix("http://", MAX), Err(UrlError::EmptyHost));
        assert_eq!(prefix("http:/", MAX), Err(UrlError::NotAbsolute));
        assert_eq!(prefix("http://a.com/%4/", MAX), Err(UrlError::InvalidPercentEncoding { at: 13 }));
        assert_eq!(prefix("http://u@a.com/", MAX), Err(UrlError::UserInfo));
    }

    #[test]
    fn hosts() {
        assert_eq!(host("Example.COM", MAX).unwrap(), "example.com");
        assert_eq!(host("Bücher.example", MAX).unwrap(), "xn--bcher-kva.example");
        assert_eq!(host("[0::1]", MAX).unwrap(), "[::1]");
        assert_eq!(host("0x7f.1", MAX).unwrap(), "127.0.0.1");
        assert_eq!(host("", MAX), Err(UrlError::EmptyHost));
        assert_eq!(host("a.com:80", MAX), Err(UrlError::NotAHost { found: ':' }));
        assert_eq!(host("http://a.com", MAX), Err(UrlError::NotAHost { found: ':' }));
        assert_eq!(host("a.com/x", MAX), Err(UrlError::NotAHost { found: '/' }));
        assert_eq!(host("u@a.com", MAX), Err(UrlError::NotAHost { found: '@' }));
        assert_eq!(host("[::1]:80", MAX), Err(UrlError::NotAHost { found: ':' }));
        assert!(matches!(host("a%2Fb", MAX), Err(UrlError::InvalidHost { .. })));
        let u = url("http://Bücher.example:8080/x", MAX).unwrap();
        assert_eq!(host("BÜCHER.example", MAX).unwrap(), u.host());
    }
}
