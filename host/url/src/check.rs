//! Input checks that run before the WHATWG parser sees anything: length, UTF-8, control
//! characters and whitespace, percent-escapes, the `scheme://authority` shape, and the one
//! rewrite we do ahead of parsing (`\` to `%5C` outside the query).

use std::borrow::Cow;

use crate::UrlError;

/// The `scheme://authority` head of an input and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Split<'a> {
    /// The authority: everything between `//` and the first `/`, `?` or `#`.
    pub authority: &'a str,
    /// Everything after the authority: empty, or starting with `/`, `?` or `#`.
    pub rest: &'a str,
}

/// Refuses inputs over `max` bytes.
pub(crate) fn length(len: usize, max: usize) -> Result<(), UrlError> {
    if len > max {
        return Err(UrlError::TooLong { len, max });
    }
    Ok(())
}

/// Refuses outputs over `max` bytes.
pub(crate) fn output_length(len: usize, max: usize) -> Result<(), UrlError> {
    if len > max {
        return Err(UrlError::NormalizedTooLong { len, max });
    }
    Ok(())
}

/// The bytes as `&str`, or where they stop being UTF-8.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, UrlError> {
    std::str::from_utf8(bytes).map_err(|e| UrlError::InvalidUtf8 { at: e.valid_up_to() })
}

/// Refuses any control character or whitespace, ASCII or Unicode (U+0085, U+00A0, U+2028...).
pub(crate) fn chars(s: &str) -> Result<(), UrlError> {
    match s.char_indices().find(|(_, c)| c.is_control() || c.is_whitespace()) {
        Some((at, ch)) => Err(UrlError::ControlOrWhitespace { ch, at }),
        None => Ok(()),
    }
}

/// Refuses a `%` not followed by two hex digits. With `partial_tail`, a `%` or `%H` that ends
/// the input is allowed (a prefix may stop inside an escape).
pub(crate) fn percent(s: &str, partial_tail: bool) -> Result<(), UrlError> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'%') {
        let at = i + off;
        let h1 = b.get(at + 1);
        let h2 = b.get(at + 2);
        match (h1, h2) {
            (Some(x), Some(y)) if x.is_ascii_hexdigit() && y.is_ascii_hexdigit() => i = at + 3,
            (None, _) if partial_tail => return Ok(()),
            (Some(x), None) if partial_tail && x.is_ascii_hexdigit() => return Ok(()),
            _ => return Err(UrlError::InvalidPercentEncoding { at }),
        }
    }
    Ok(())
}

/// Splits `scheme://authority rest`, refusing what is not absolute, not http(s), has userinfo
/// or has an empty host. Expects [`backslashes`] to have run (so `\` is no delimiter here, just
/// as it is none for the parser afterwards).
pub(crate) fn split(s: &str) -> Result<Split<'_>, UrlError> {
    let (scheme, after) = s.split_once(':').ok_or(UrlError::NotAbsolute)?;
    let valid_scheme = scheme.bytes().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    let Some(after) = after.strip_prefix("//").filter(|_| valid_scheme) else {
        return Err(UrlError::NotAbsolute);
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        let scheme: String = scheme.chars().take(32).collect();
        return Err(UrlError::UnsupportedScheme { scheme });
    }
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    if authority.contains('@') {
        return Err(UrlError::UserInfo);
    }
    let host = match authority.strip_prefix('[') {
        Some(_) => &authority[..authority.find(']').map_or(authority.len(), |i| i + 1)],
        None => &authority[..authority.find(':').unwrap_or(authority.len())],
    };
    if host.is_empty() {
        return Err(UrlError::EmptyHost);
    }
    Ok(Split { authority, rest })
}

/// Rewrites `\` as `%5C` before the first `?` or `#`. The WHATWG parser would read a `\` there
/// as `/`, which would give `/a\b` the cache key of `/a/b` although an origin may serve them
/// differently; `%5C` keeps them apart. In the query `\` is kept as given, like everything else.
pub(crate) fn backslashes(s: &str) -> Cow<'_, str> {
    let end = s.find(['?', '#']).unwrap_or(s.len());
    if !s[..end].contains('\\') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(format!("{}{}", s[..end].replace('\\', "%5C"), &s[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_limit() {
        assert_eq!(length(10, 10), Ok(()));
        assert_eq!(length(11, 10), Err(UrlError::TooLong { len: 11, max: 10 }));
    }

    #[test]
    fn utf8_reports_offset() {
        assert_eq!(utf8(b"http://a/\xff"), Err(UrlError::InvalidUtf8 { at: 9 }));
        assert_eq!(utf8("http://a/é".as_bytes()), Ok("http://a/é"));
    }

    #[test]
    fn control_and_whitespace_anywhere() {
        assert_eq!(chars("http://a/ b"), Err(UrlError::ControlOrWhitespace { ch: ' ', at: 9 }));
        assert_eq!(chars("http://a/\tb"), Err(UrlError::ControlOrWhitespace { ch: '\t', at: 9 }));
        assert_eq!(chars("http://a/#\u{7f}"), Err(UrlError::ControlOrWhitespace { ch: '\u{7f}', at: 10 }));
        assert_eq!(chars("http://a/\u{a0}"), Err(UrlError::ControlOrWhitespace { ch: '\u{a0}', at: 9 }));
        assert_eq!(chars("http://a/\u{2028}"), Err(UrlError::ControlOrWhitespace { ch: '\u{2028}', at: 9 }));
        assert_eq!(chars("http://a/é?q=ü"), Ok(()));
    }

    #[test]
    fn percent_escapes() {
        assert_eq!(percent("/a%2Fb%7e", false), Ok(()));
        assert_eq!(percent("/a%zz", false), Err(UrlError::InvalidPercentEncoding { at: 2 }));
        assert_eq!(percent("/a%4", false), Err(UrlError::InvalidPercentEncoding { at: 2 }));
        assert_eq!(percent("/a%", false), Err(UrlError::InvalidPercentEncoding { at: 2 }));
        assert_eq!(percent("/a%4", true), Ok(()));
        assert_eq!(percent("/a%", true), Ok(()));
        assert_eq!(percent("/a%g", true), Err(UrlError::InvalidPercentEncoding { at: 2 }));
        assert_eq!(percent("/a%4/b", true), Err(UrlError::InvalidPercentEncoding { at: 2 }));
    }

    #[test]
    fn split_shapes() {
        assert_eq!(split("HTTP://a.com:80/x"), Ok(Split { authority: "a.com:80", rest: "/x" }));
        assert_eq!(split("https://a.com?q"), Ok(Split { authority: "a.com", rest: "?q" }));
        assert_eq!(split("https://[::1]:8080"), Ok(Split { authority: "[::1]:8080", rest: "" }));
        assert_eq!(split("/just/a/path"), Err(UrlError::NotAbsolute));
        assert_eq!(split("//a.com/x"), Err(UrlError::NotAbsolute));
        assert_eq!(split("http:/a.com/x"), Err(UrlError::NotAbsolute));
        assert_eq!(split("example.com:8080/x"), Err(UrlError::NotAbsolute));
        assert_eq!(split("ftp://a.com/"), Err(UrlError::UnsupportedScheme { scheme: "ftp".into() }));
        assert_eq!(split("http://u:p@a.com/"), Err(UrlError::UserInfo));
        assert_eq!(split("http://@a.com/"), Err(UrlError::UserInfo));
        assert_eq!(split("http:///a"), Err(UrlError::EmptyHost));
        assert_eq!(split("http://:8080/"), Err(UrlError::EmptyHost));
    }

    #[test]
    fn backslashes_outside_query() {
        assert_eq!(backslashes("http://a/b"), "http://a/b");
        assert_eq!(backslashes("http://a/b\\c?d\\e"), "http://a/b%5Cc?d\\e");
        assert_eq!(backslashes("http://a\\b/"), "http://a%5Cb/");
    }
}
