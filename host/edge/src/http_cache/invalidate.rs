//! Invalidation by unsafe methods (RFC 9111 §4.4).

use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Uri};

/// The URLs a successful unsafe request invalidates (RFC 9111 §4.4): for a method that is not
/// safe (anything but GET, HEAD, OPTIONS, TRACE — so POST, PUT, DELETE, PATCH …) answered with a
/// `2xx` or `3xx`, the target `request_uri` and the `Location` and `Content-Location` URIs,
/// resolved against it (RFC 3986 §5.2, fragments dropped), kept only when same-origin (scheme,
/// host and effective port). Empty otherwise.
///
/// `request_uri` must be absolute (`http://host/path?q`); when it is not, only it is returned.
/// The results are absolute but not normalised: the proxy turns them into cache keys with the
/// same URL normalisation as lookups, and purges every variant of each.
pub fn invalidation_targets(
    method: &Method,
    status: StatusCode,
    request_uri: &str,
    resp_headers: &HeaderMap,
) -> Vec<String> {
    if method.is_safe() || !(status.is_success() || status.is_redirection()) {
        return Vec::new();
    }
    let mut targets = vec![request_uri.to_owned()];
    let Some(base) = Base::parse(request_uri) else {
        return targets;
    };
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(reference) = resp_headers.get(name).and_then(|v| v.to_str().ok()) else { continue };
        if let Some(resolved) = base.resolve(reference.trim()) {
            if base.same_origin(&resolved) && !targets.contains(&resolved.text) {
                targets.push(resolved.text);
            }
        }
    }
    targets
}

/// An absolute URI split for resolution.
struct Base {
    scheme: String,
    host: String,
    port: u16,
    authority: String,
    path: String,
    query: Option<String>,
}

/// A resolved absolute URI.
struct Resolved {
    scheme: String,
    host: String,
    port: u16,
    text: String,
}

impl Base {
    fn parse(uri: &str) -> Option<Base> {
        let uri: Uri = uri.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let authority = uri.authority()?;
        let port = authority.port_u16().or_else(|| default_port(&scheme))?;
        Some(Base {
            host: authority.host().to_ascii_lowercase(),
            authority: authority.as_str().to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            port,
            scheme,
        })
    }

    /// RFC 3986 §5.2.2 (non-strict) for `reference` without its fragment.
    fn resolve(&self, reference: &str) -> Option<Resolved> {
        let reference = reference.split('#').next().unwrap_or("");
        if has_scheme(reference) {
            return absolute(reference);
        }
        if reference.starts_with("//") {
            return absolute(&format!("{}:{reference}", self.scheme));
        }
        let (path, query) = match reference.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (reference, None),
        };
        let (path, query) = if path.is_empty() {
            (self.path.clone(), query.or_else(|| self.query.clone()))
        } else if path.starts_with('/') {
            (remove_dot_segments(path), query)
        } else {
            let dir = &self.path[..self.path.rfind('/').map_or(0, |i| i + 1)];
            let merged = if dir.is_empty() { format!("/{path}") } else { format!("{dir}{path}") };
            (remove_dot_segments(&merged), query)
        };
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        absolute(&format!("{}://{}{path}{query}", self.scheme, self.authority))
    }

    fn same_origin(&self, other: &Resolved) -> bool {
        self.scheme == other.scheme && self.host == other.host && self.port == other.port
    }
}

fn absolute(text: &str) -> Option<Resolved> {
    let uri: Uri = text.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    let port = authority.port_u16().or_else(|| default_port(&scheme))?;
    let path_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    Some(Resolved {
        host: authority.host().to_ascii_lowercase(),
        text: format!("{scheme}://{}{path_query}", authority.as_str()),
        scheme,
        port,
    })
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `scheme ":"` at the start: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":".
fn has_scheme(reference: &str) -> bool {
    let Some((scheme, _)) = reference.split_once(':') else { return false };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." | ".." => {
                if *seg == ".." {
                    out.pop();
                }
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_cache::test_support::headers;

    fn targets(method: Method, status: u16, uri: &str, pairs: &[(&str, &str)]) -> Vec<String> {
        invalidation_targets(&method, StatusCode::from_u16(status).unwrap(), uri, &headers(pairs))
    }

    #[test]
    fn unsafe_success_invalidates_target_location_and_content_location() {
        let got = targets(
            Method::POST,
            201,
            "https://a.example/items/list?page=2",
            &[("location", "/items/42"), ("content-location", "7#frag")],
        );
        assert_eq!(
            got,
            ["https://a.example/items/list?page=2", "https://a.example/items/42", "https://a.example/items/7"]
        );
        for m in [Method::PUT, Method::DELETE, Method::PATCH] {
            assert_eq!(targets(m, 204, "http://a.example/x", &[]), ["http://a.example/x"]);
        }
        assert_eq!(targets(Method::POST, 303, "http://a.example/x", &[]), ["http://a.example/x"]);
    }

    #[test]
    fn safe_methods_and_failures_invalidate_nothing() {
        assert!(targets(Method::GET, 200, "http://a.example/x", &[]).is_empty());
        assert!(targets(Method::OPTIONS, 200, "http://a.example/x", &[]).is_empty());
        assert!(targets(Method::POST, 404, "http://a.example/x", &[]).is_empty());
        assert!(targets(Method::DELETE, 500, "http://a.example/x", &[]).is_empty());
    }

    #[test]
    fn other_origins_are_ignored_and_default_ports_match() {
        let got = targets(
            Method::PUT,
            200,
            "http://a.example/x",
            &[("location", "http://evil.example/x"), ("content-location", "HTTP://A.example:80/y")],
        );
        assert_eq!(got, ["http://a.example/x", "http://A.example:80/y"]);
        let scheme = targets(Method::PUT, 200, "http://a.example/x", &[("location", "https://a.example/x")]);
        assert_eq!(scheme, ["http://a.example/x"]);
        let net_path = targets(Method::PUT, 200, "https://a.example/x", &[("location", "//a.example/z")]);
        assert_eq!(net_path, ["https://a.example/x", "https://a.example/z"]);
    }

    #[test]
    fn relative_references_resolve_per_rfc_3986() {
        let base = Base::parse("http://a/b/c/d;p?q").unwrap();
        let r = |s: &str| base.resolve(s).map(|r| r.text);
        assert_eq!(r("g").as_deref(), Some("http://a/b/c/g"));
        assert_eq!(r("./g").as_deref(), Some("http://a/b/c/g"));
        assert_eq!(r("g/").as_deref(), Some("http://a/b/c/g/"));
        assert_eq!(r("?y").as_deref(), Some("http://a/b/c/d;p?y"));
        assert_eq!(r("").as_deref(), Some("http://a/b/c/d;p?q"));
        assert_eq!(r("..").as_deref(), Some("http://a/b/"));
        assert_eq!(r("../../g").as_deref(), Some("http://a/g"));
        assert_eq!(r("../../../g").as_deref(), Some("http://a/g"));
        assert_eq!(r("/./g").as_deref(), Some("http://a/g"));
    }

    #[test]
    fn relative_request_uri_returns_only_itself() {
        assert_eq!(targets(Method::POST, 200, "/x", &[("location", "/y")]), ["/x"]);
    }
}
