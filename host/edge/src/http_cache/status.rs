//! The `Cache-Status` response header (RFC 9211).
//!
//! One list member named [`CACHE_NAME`], parameters in this order:
//! `hit` | `fwd=<reason>`, `fwd-status=<code>`, `ttl=<seconds>`, `stored`, `collapsed`,
//! `detail=<token or string>`. How the proxy maps its outcomes:
//!
//! | outcome | kind | detail | example |
//! |---|---|---|---|
//! | fresh hit | `Hit` | — | `edgepurge; hit; ttl=42` |
//! | stale served under SWR | `Hit` | `stale-while-revalidate` | `edgepurge; hit; ttl=-3; detail=stale-while-revalidate` |
//! | miss, stored | `Forward(Miss/UriMiss)`, `stored` | — | `edgepurge; fwd=miss; stored` |
//! | miss, not stored | `Forward(UriMiss)` | the [`StoreVerdict::DoNotStore`] reason | `edgepurge; fwd=uri-miss; detail=no-store` |
//! | other variant stored | `Forward(VaryMiss)` | — | `edgepurge; fwd=vary-miss; stored` |
//! | revalidated (`304` merged) | `Forward(Stale)`, `fwd_status=304` | — | `edgepurge; fwd=stale; fwd-status=304; ttl=60; stored` |
//! | stale served on origin error | `Forward(Stale)`, `fwd_status=502` | `stale-if-error` | `edgepurge; fwd=stale; fwd-status=502; detail=stale-if-error` |
//! | client forced revalidation | `Forward(Request)` | — | `edgepurge; fwd=request; fwd-status=304` |
//! | method not cacheable | `Forward(Method)` | — | `edgepurge; fwd=method` |
//! | policy or query-mode bypass | `Forward(Bypass)` | e.g. `policy-bypass` | `edgepurge; fwd=bypass; detail=policy-bypass` |
//! | waiter on another request's fill | add `collapsed` | — | `edgepurge; fwd=miss; collapsed` |
//!
//! [`StoreVerdict::DoNotStore`]: super::StoreVerdict::DoNotStore

use http::{HeaderValue, StatusCode};

/// The cache's name in `Cache-Status`.
pub const CACHE_NAME: &str = "edgepurge";

/// Why a request went forward to the origin (the `fwd` parameter, RFC 9211 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// `bypass`: configured (or policy) not to use the cache.
    Bypass,
    /// `method`: the method is not cacheable.
    Method,
    /// `uri-miss`: nothing stored for the URL.
    UriMiss,
    /// `vary-miss`: the URL is stored, but not this variant.
    VaryMiss,
    /// `miss`: nothing usable stored (when uri/vary cannot be told apart).
    Miss,
    /// `request`: the client's request required it.
    Request,
    /// `stale`: the stored response was stale (or soft-purged).
    Stale,
    /// `partial`: only part of the response was stored.
    Partial,
}

impl Forward {
    /// The parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Forward::Bypass => "bypass",
            Forward::Method => "method",
            Forward::UriMiss => "uri-miss",
            Forward::VaryMiss => "vary-miss",
            Forward::Miss => "miss",
            Forward::Request => "request",
            Forward::Stale => "stale",
            Forward::Partial => "partial",
        }
    }
}

/// What happened to a request, for [`cache_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatusKind {
    /// Answered from the cache without going to the origin (`hit`), fresh or stale.
    Hit,
    /// Went to the origin.
    Forward {
        /// Why (`fwd`).
        fwd: Forward,
        /// The origin's status (`fwd-status`), if a response came back.
        fwd_status: Option<StatusCode>,
        /// Whether the response was stored (`stored`), including a `304` merge.
        stored: bool,
        /// Whether this request waited on another one's origin request (`collapsed`).
        collapsed: bool,
    },
}

impl CacheStatusKind {
    /// A plain forward with no status, not stored, not collapsed.
    pub fn forward(fwd: Forward) -> Self {
        CacheStatusKind::Forward { fwd, fwd_status: None, stored: false, collapsed: false }
    }
}

/// A `Cache-Status` value for this cache, e.g. `edgepurge; hit; ttl=42` (see the module table).
/// `ttl_remaining` is [`StoredResponse::ttl_remaining`](super::StoredResponse::ttl_remaining),
/// negative when stale. A `detail` that is not an sf-token is sent as an escaped sf-string.
pub fn cache_status(kind: CacheStatusKind, detail: Option<&str>, ttl_remaining: Option<i64>) -> HeaderValue {
    use std::fmt::Write as _;
    // On every response: one allocation, no temporaries.
    let mut out = String::with_capacity(64);
    out.push_str(CACHE_NAME);
    let (stored, collapsed) = match kind {
        CacheStatusKind::Hit => {
            out.push_str("; hit");
            (false, false)
        }
        CacheStatusKind::Forward { fwd, fwd_status, stored, collapsed } => {
            out.push_str("; fwd=");
            out.push_str(fwd.as_str());
            if let Some(status) = fwd_status {
                let _ = write!(out, "; fwd-status={}", status.as_u16());
            }
            (stored, collapsed)
        }
    };
    if let Some(ttl) = ttl_remaining {
        let _ = write!(out, "; ttl={ttl}");
    }
    if stored {
        out.push_str("; stored");
    }
    if collapsed {
        out.push_str("; collapsed");
    }
    if let Some(detail) = detail {
        out.push_str("; detail=");
        if is_token(detail) {
            out.push_str(detail);
        } else {
            out.push('"');
            for c in detail.chars() {
                match c {
                    '"' | '\\' => {
                        out.push('\\');
                        out.push(c);
                    }
                    ' '..='~' => out.push(c),
                    _ => out.push('?'),
                }
            }
            out.push('"');
        }
    }
    HeaderValue::from_str(&out).expect("printable ASCII")
}

/// An sf-token (RFC 8941 §3.3.4): ALPHA or `*`, then tchar, `:` or `/`.
fn is_token(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else { return false };
    (first.is_ascii_alphabetic() || first == '*')
        && chars.all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:/".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(fwd: Forward, status: Option<u16>, stored: bool) -> CacheStatusKind {
        let fwd_status = status.map(|s| StatusCode::from_u16(s).unwrap());
        CacheStatusKind::Forward { fwd, fwd_status, stored, collapsed: false }
    }

    #[test]
    fn the_documented_examples() {
        assert_eq!(cache_status(CacheStatusKind::Hit, None, Some(42)), "edgepurge; hit; ttl=42");
        assert_eq!(cache_status(fwd(Forward::Miss, None, true), None, None), "edgepurge; fwd=miss; stored");
        assert_eq!(
            cache_status(fwd(Forward::Stale, Some(304), false), None, None),
            "edgepurge; fwd=stale; fwd-status=304"
        );
        assert_eq!(
            cache_status(CacheStatusKind::Hit, Some("stale-while-revalidate"), None),
            "edgepurge; hit; detail=stale-while-revalidate"
        );
        assert_eq!(
            cache_status(CacheStatusKind::forward(Forward::UriMiss), Some("no-store"), None),
            "edgepurge; fwd=uri-miss; detail=no-store"
        );
    }

    #[test]
    fn every_parameter_in_order_and_negative_ttl() {
        let kind = CacheStatusKind::Forward {
            fwd: Forward::VaryMiss,
            fwd_status: Some(StatusCode::OK),
            stored: true,
            collapsed: true,
        };
        assert_eq!(
            cache_status(kind, Some("x"), Some(-5)),
            "edgepurge; fwd=vary-miss; fwd-status=200; ttl=-5; stored; collapsed; detail=x"
        );
    }

    #[test]
    fn non_token_detail_is_a_quoted_string() {
        assert_eq!(
            cache_status(CacheStatusKind::forward(Forward::Bypass), Some("5xx \"bad\"\\é"), None),
            r#"edgepurge; fwd=bypass; detail="5xx \"bad\"\\?""#
        );
        assert_eq!(cache_status(CacheStatusKind::Hit, Some(""), None), r#"edgepurge; hit; detail="""#);
    }
}
