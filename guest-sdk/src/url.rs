//! URL parts for policies: scheme, host, port, path, query, path segments and file extension
//! of the normalised absolute URLs the host passes in (`https://example.com/a/b.css?v=1`).

/// The parts of an absolute URL. Borrowed from the input; nothing is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The host, without port.
    pub host: &'a str,
    /// The port, when the URL names one.
    pub port: Option<u16>,
    /// The path, starting with `/` (`/` when the URL has none).
    pub path: &'a str,
    /// The query without `?`, when present.
    pub query: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    /// Splits an absolute `scheme://host[:port]/path?query#fragment` URL; `None` when it is not
    /// one.
    ///
    /// ```
    /// use edgepurge_sdk::UrlParts;
    /// let u = UrlParts::parse("https://example.com:8443/img/a.png?w=10#top").unwrap();
    /// assert_eq!((u.host, u.port, u.path, u.query), ("example.com", Some(8443), "/img/a.png", Some("w=10")));
    /// assert_eq!(u.extension(), Some("png"));
    /// assert_eq!(u.segments().collect::<Vec<_>>(), ["img", "a.png"]);
    /// ```
    pub fn parse(url: &'a str) -> Option<UrlParts<'a>> {
        let (scheme, rest) = url.split_once("://")?;
        if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
            return None;
        }
        let rest = rest.split('#').next().unwrap_or("");
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(auth_end);
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse() {
                Ok(port) => (h, Some(port)),
                Err(_) if p.is_empty() => (h, None),
                Err(_) => return None,
            },
            _ => (authority, None),
        };
        if host.is_empty() {
            return None;
        }
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (tail, None),
        };
        Some(UrlParts { scheme, host, port, path: if path.is_empty() { "/" } else { path }, query })
    }

    /// The non-empty path segments.
    pub fn segments(&self) -> impl Iterator<Item = &'a str> {
        self.path.split('/').filter(|s| !s.is_empty())
    }

    /// The extension of the last path segment (`css` of `/a/site.css`), if any.
    pub fn extension(&self) -> Option<&'a str> {
        let last = self.path.rsplit('/').next()?;
        let (stem, ext) = last.rsplit_once('.')?;
        (!stem.is_empty() && !ext.is_empty()).then_some(ext)
    }

    /// The query's `name=value` pairs, undecoded; a pair without `=` has an empty value.
    pub fn query_pairs(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.query.unwrap_or("").split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, "")))
    }

    /// The URL without its query: `scheme://host[:port]path`.
    pub fn without_query(&self) -> String {
        let mut out = format!("{}://{}", self.scheme, self.host);
        if let Some(port) = self.port {
            out.push_str(&format!(":{port}"));
        }
        out.push_str(self.path);
        out
    }

    /// The URL keeping only the query pairs `keep` accepts, in their original order.
    pub fn with_query_filtered(&self, keep: impl Fn(&str) -> bool) -> String {
        self.with_query_pairs(self.query_pairs().filter(|(k, _)| keep(k)))
    }

    /// The URL without its query, followed by `pairs` as its query (none: no `?`). A pair with
    /// an empty value is written as its name alone.
    ///
    /// ```
    /// use edgepurge_sdk::UrlParts;
    /// let u = UrlParts::parse("https://a.com/x?b=2&a=1&flag").unwrap();
    /// let mut pairs: Vec<_> = u.query_pairs().collect();
    /// pairs.sort();
    /// assert_eq!(u.with_query_pairs(pairs), "https://a.com/x?a=1&b=2&flag");
    /// ```
    pub fn with_query_pairs<'p>(&self, pairs: impl IntoIterator<Item = (&'p str, &'p str)>) -> String {
        let kept: Vec<String> =
            pairs.into_iter().map(|(k, v)| if v.is_empty() { k.to_owned() } else { format!("{k}={v}") }).collect();
        let mut out = self.without_query();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_what_is_not_absolute() {
        assert_eq!(UrlParts::parse("/relative"), None);
        assert_eq!(UrlParts::parse("https:///nohost"), None);
        assert_eq!(UrlParts::parse("http://h:notaport/"), None);
        assert_eq!(UrlParts::parse("http://h").unwrap().path, "/");
    }

    #[test]
    fn filters_query() {
        let u = UrlParts::parse("https://a.com/x?b=2&a=1&utm=z").unwrap();
        assert_eq!(u.with_query_filtered(|k| k != "utm"), "https://a.com/x?b=2&a=1");
        assert_eq!(u.with_query_filtered(|_| false), "https://a.com/x");
    }

    proptest! {
        /// Parts of a URL built from parts read back unchanged.
        #[test]
        fn round_trips(host in "[a-z]{1,10}(\\.[a-z]{2,5})?", port in proptest::option::of(1u16..), path in "(/[a-z0-9._-]{0,8}){0,4}", query in proptest::option::of("[a-z0-9=&]{0,12}")) {
            let mut url = format!("https://{host}");
            if let Some(p) = port { url.push_str(&format!(":{p}")); }
            url.push_str(&path);
            if let Some(q) = &query { url.push('?'); url.push_str(q); }
            let u = UrlParts::parse(&url).unwrap();
            prop_assert_eq!(u.host, host.as_str());
            prop_assert_eq!(u.port, port);
            prop_assert_eq!(u.path, if path.is_empty() { "/" } else { path.as_str() });
            prop_assert_eq!(u.query, query.as_deref());
        }

        #[test]
        fn never_panics(text in ".*") {
            let _ = UrlParts::parse(&text).map(|u| u.extension());
        }
    }
}
