//! `Range` requests answered from a complete stored body (RFC 9110 §14).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

use super::store::StoredResponse;

/// How to answer a `Range` request from a stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// `206 Partial Content`: send `body` with `Content-Range` and a `Content-Length` of
    /// `body.len()` (the stored `Content-Length` describes the whole body and must be replaced).
    Partial {
        /// The selected bytes.
        body: Bytes,
        /// `bytes first-last/len`.
        content_range: HeaderValue,
    },
    /// `416 Range Not Satisfiable` with this `Content-Range` (`bytes */len`) and no body.
    Unsatisfiable {
        /// `bytes */len`.
        content_range: HeaderValue,
    },
    /// Ignore the header and send the whole `200` (several ranges, another unit, a malformed
    /// value, or a stored status other than `200`), as RFC 9110 §14.2 allows.
    Ignore,
}

/// How to answer a single-range request for a `200` whose body is `len` bytes long, decided
/// from the length alone, so a body still streaming from the origin can be cut to the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangePlan {
    /// `206 Partial Content` with bytes `first..=last` and this `Content-Range`.
    Partial {
        /// First byte (inclusive).
        first: u64,
        /// Last byte (inclusive).
        last: u64,
        /// `bytes first-last/len`.
        content_range: HeaderValue,
    },
    /// `416 Range Not Satisfiable` with this `Content-Range` (`bytes */len`).
    Unsatisfiable {
        /// `bytes */len`.
        content_range: HeaderValue,
    },
    /// Send the whole `200`.
    Ignore,
}

/// Plans the answer to `range_header` for a `200` body of `len` bytes.
pub fn plan_range(len: u64, range_header: &HeaderValue) -> RangePlan {
    match parse(range_header.as_bytes(), len) {
        Spec::Satisfiable { first, last } => RangePlan::Partial {
            first,
            last,
            content_range: HeaderValue::from_str(&format!("bytes {first}-{last}/{len}")).expect("ascii"),
        },
        Spec::Unsatisfiable => {
            RangePlan::Unsatisfiable { content_range: HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii") }
        }
        Spec::Ignore => RangePlan::Ignore,
    }
}

/// Answers a single byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`) from `stored`'s complete
/// body. The proxy should first check `If-Range` with [`if_range_allows`] and pass the request
/// to the origin when nothing is stored.
pub fn range_response(stored: &StoredResponse, range_header: &HeaderValue) -> RangeOutcome {
    if stored.status != StatusCode::OK {
        return RangeOutcome::Ignore;
    }
    match plan_range(stored.body.len() as u64, range_header) {
        RangePlan::Partial { first, last, content_range } => {
            RangeOutcome::Partial { body: stored.body.slice(first as usize..=last as usize), content_range }
        }
        RangePlan::Unsatisfiable { content_range } => RangeOutcome::Unsatisfiable { content_range },
        RangePlan::Ignore => RangeOutcome::Ignore,
    }
}

/// Whether a `Range` may be honoured given the request's `If-Range` (RFC 9110 §13.1.5): absent,
/// or equal to the stored strong `ETag`, or (a date) equal to the stored `Last-Modified`.
/// Otherwise the whole `200` is sent.
pub fn if_range_allows(stored_headers: &HeaderMap, if_range: Option<&HeaderValue>) -> bool {
    let Some(if_range) = if_range.and_then(|v| v.to_str().ok()).map(str::trim) else {
        return if_range.is_none();
    };
    if if_range.starts_with('"') {
        let etag = stored_headers.get(header::ETAG).and_then(|v| v.to_str().ok()).map(str::trim);
        return etag == Some(if_range);
    }
    if if_range.starts_with("W/") {
        return false;
    }
    let modified = stored_headers.get(header::LAST_MODIFIED).and_then(|v| v.to_str().ok());
    match (httpdate::parse_http_date(if_range), modified.map(httpdate::parse_http_date)) {
        (Ok(a), Some(Ok(b))) => a == b,
        _ => false,
    }
}

/// A parsed `Range` against a body of known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spec {
    /// Inclusive byte positions within the body.
    Satisfiable { first: u64, last: u64 },
    /// Well-formed but outside the body.
    Unsatisfiable,
    /// Not a single byte range we answer.
    Ignore,
}

pub(crate) fn parse(value: &[u8], len: u64) -> Spec {
    let Ok(value) = std::str::from_utf8(value) else { return Spec::Ignore };
    let Some((unit, set)) = value.trim().split_once('=') else { return Spec::Ignore };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return Spec::Ignore;
    }
    let Some((a, b)) = set.trim().split_once('-') else { return Spec::Ignore };
    let (a, b) = (a.trim(), b.trim());
    let num =
        |s: &str| if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) { s.parse::<u64>().ok() } else { None };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Spec::Ignore,
        (true, false) => match num(b) {
            None => Spec::Ignore,
            Some(0) => Spec::Unsatisfiable,
            Some(_) if len == 0 => Spec::Unsatisfiable,
            Some(n) => Spec::Satisfiable { first: len - n.min(len), last: len - 1 },
        },
        (false, open) => {
            let Some(first) = num(a) else { return Spec::Ignore };
            let last = if open {
                u64::MAX
            } else {
                match num(b) {
                    Some(last) if last >= first => last,
                    _ => return Spec::Ignore,
                }
            };
            if first >= len {
                Spec::Unsatisfiable
            } else {
                Spec::Satisfiable { first, last: last.min(len - 1) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_cache::test_support::{headers, stored};

    fn answer(range: &str) -> RangeOutcome {
        range_response(
            &stored(&[("cache-control", "max-age=60")], b"0123456789"),
            &HeaderValue::from_str(range).unwrap(),
        )
    }

    fn partial(body: &'static [u8], cr: &'static str) -> RangeOutcome {
        RangeOutcome::Partial { body: Bytes::from_static(body), content_range: HeaderValue::from_static(cr) }
    }

    #[test]
    fn single_ranges_of_every_form() {
        assert_eq!(answer("bytes=0-3"), partial(b"0123", "bytes 0-3/10"));
        assert_eq!(answer("bytes=7-"), partial(b"789", "bytes 7-9/10"));
        assert_eq!(answer("bytes=-2"), partial(b"89", "bytes 8-9/10"));
        assert_eq!(answer("Bytes = 8-100"), partial(b"89", "bytes 8-9/10"));
        assert_eq!(answer("bytes=-50"), partial(b"0123456789", "bytes 0-9/10"));
    }

    #[test]
    fn unsatisfiable_ranges_get_416_with_the_length() {
        let unsat = RangeOutcome::Unsatisfiable { content_range: HeaderValue::from_static("bytes */10") };
        assert_eq!(answer("bytes=10-"), unsat);
        assert_eq!(answer("bytes=20-30"), unsat);
        assert_eq!(answer("bytes=-0"), unsat);
    }

    #[test]
    fn multiple_malformed_or_other_units_are_ignored() {
        for v in ["bytes=0-1,4-5", "bytes=5-2", "bytes=-", "bytes=a-b", "items=0-1", "bytes 0-1", "bytes=+1-2"] {
            assert_eq!(answer(v), RangeOutcome::Ignore, "{v}");
        }
    }

    #[test]
    fn non_200_is_ignored() {
        let mut s = stored(&[("cache-control", "max-age=60")], b"gone");
        s.status = StatusCode::GONE;
        assert_eq!(range_response(&s, &HeaderValue::from_static("bytes=0-1")), RangeOutcome::Ignore);
    }

    #[test]
    fn if_range_matches_strong_etag_or_exact_date() {
        let h = headers(&[("etag", "\"v1\""), ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT")]);
        let v = |s: &'static str| Some(HeaderValue::from_static(s));
        assert!(if_range_allows(&h, None));
        assert!(if_range_allows(&h, v("\"v1\"").as_ref()));
        assert!(!if_range_allows(&h, v("\"v2\"").as_ref()));
        assert!(!if_range_allows(&h, v("W/\"v1\"").as_ref()));
        assert!(if_range_allows(&h, v("Tue, 14 Nov 2023 22:13:20 GMT").as_ref()));
        assert!(!if_range_allows(&h, v("Wed, 15 Nov 2023 22:13:20 GMT").as_ref()));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics_and_stays_in_the_body(value in proptest::collection::vec(any::<u8>(), 0..24), len in 0u64..64) {
                if let Spec::Satisfiable { first, last } = parse(&value, len) {
                    prop_assert!(first <= last && last < len);
                }
            }

            #[test]
            fn well_formed_ranges_stay_in_the_body(a in 0u64..80, b in 0u64..80, form in 0u8..3, len in 0u64..64) {
                let value = match form { 0 => format!("bytes={a}-{b}"), 1 => format!("bytes={a}-"), _ => format!("bytes=-{b}") };
                match parse(value.as_bytes(), len) {
                    Spec::Satisfiable { first, last } => prop_assert!(first <= last && last < len),
                    Spec::Unsatisfiable => prop_assert!(len == 0 || (form != 2 && a >= len) || (form == 2 && b == 0)),
                    Spec::Ignore => prop_assert!(form == 0 && b < a),
                }
            }
        }
    }
}
