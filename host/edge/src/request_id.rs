//! Request ids: every proxy request carries one, taken from the client when it sends a sane
//! one, else made here; it goes to the origin, back to the client and into every log line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::SystemTime;

use http::header::{HeaderMap, HeaderValue};

/// The request id header: taken from the client when it sends a sane one, else made here; sent
/// to the origin, returned to the client and recorded in every log line of the request.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A request id: the client's if it is 1–64 visible ASCII characters, else 16 hex digits unique
/// within the process (a random start, then a counter).
pub(crate) fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(id) = headers.get(REQUEST_ID_HEADER) {
        if (1..=64).contains(&id.len()) && id.as_bytes().iter().all(|b| b.is_ascii_graphic()) {
            return id.clone();
        }
    }
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    let next = NEXT.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos());
        AtomicU64::new(h.finish())
    });
    HeaderValue::from_str(&format!("{:016x}", next.fetch_add(1, Ordering::Relaxed))).expect("hex is a valid header")
}
