//! API tokens: creation (random, stored hashed), host patterns (a token's tenancy) and the
//! per-token rate limit (a token bucket).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use edgepurge_control_store::{ApiToken, Millis, TokenHash, TokenStore};

use crate::Error;

/// Makes a new random token (32 bytes from the OS, hex, prefixed `ep_` so leaked tokens are easy
/// to recognise), stores its hash as `name` with `hosts` and `admin`, and returns the token: the
/// only time it exists in clear.
pub async fn create_token<S: TokenStore>(
    store: &S,
    name: &str,
    hosts: &[String],
    admin: bool,
    now: Millis,
) -> Result<String, Error> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(Error::Invalid("a token name must be 1–200 characters without control characters".into()));
    }
    let hosts = normalize_patterns(hosts)?;
    if hosts.is_empty() && !admin {
        return Err(Error::Invalid("a token needs at least one host pattern (--hosts) or --admin".into()));
    }
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::Internal(format!("no randomness from the OS: {e}")))?;
    let token: String = "ep_".chars().chain(bytes.iter().flat_map(|b| hex(*b))).collect();
    let record = ApiToken { name: name.to_owned(), hosts, admin, created_at: now };
    store.insert_token(TokenHash::of(&token), record).await?;
    Ok(token)
}

fn hex(b: u8) -> [char; 2] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    [DIGITS[(b >> 4) as usize] as char, DIGITS[(b & 15) as usize] as char]
}

/// Normalises host patterns (`example.com`, `*.example.com`) as hosts are normalised, so matching
/// compares like with like.
pub fn normalize_patterns(patterns: &[String]) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for raw in patterns.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let (wild, host) = match raw.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let host = edgepurge_url::normalize_host(host)
            .map_err(|e| Error::Invalid(format!("host pattern `{raw}` is not a host or `*.host`: {e}")))?;
        out.push(if wild { format!("*.{host}") } else { host });
    }
    Ok(out)
}

/// Whether `host` (normalised) matches one of `patterns`: `example.com` matches itself only,
/// `*.example.com` any name below it (any depth) but not `example.com` itself.
pub fn host_allowed(patterns: &[String], host: &str) -> bool {
    patterns.iter().any(|p| match p.strip_prefix("*.") {
        Some(parent) => {
            host.len() > parent.len() + 1 && host.ends_with(parent) && host[..host.len() - parent.len()].ends_with('.')
        }
        None => p == host,
    })
}

/// The figures a rate-limited answer carries (`RateLimit-*`, `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateState {
    /// Whether this request may proceed.
    pub allowed: bool,
    /// The bucket size.
    pub limit: u32,
    /// Whole requests left after this one.
    pub remaining: u32,
    /// Seconds until the bucket is full again (`RateLimit-Reset`).
    pub reset_secs: u64,
    /// Seconds until one request is allowed again (`Retry-After`; 0 when allowed).
    pub retry_after_secs: u64,
}

/// A token bucket per token name. Buckets start full; each request takes one.
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter allowing `burst` requests at once, refilled at `per_second`.
    pub fn new(burst: u32, per_second: f64) -> Self {
        RateLimiter { burst: burst as f64, per_second, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one request from `token`'s bucket at `now`.
    pub fn check(&self, token: &str, now: Instant) -> RateState {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (level, last) = buckets.entry(token.to_owned()).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *level = (*level + elapsed * self.per_second).min(self.burst);
        *last = now;
        let allowed = *level >= 1.0;
        if allowed {
            *level -= 1.0;
        }
        let secs =
            |tokens: f64| Duration::from_secs_f64((tokens / self.per_second).max(0.0)).as_secs_f64().ceil() as u64;
        RateState {
            allowed,
            limit: self.burst as u32,
            remaining: level.floor() as u32,
            reset_secs: secs(self.burst - *level),
            retry_after_secs: if allowed { 0 } else { secs(1.0 - *level).max(1) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_hosts_and_subdomains() {
        let p = normalize_patterns(&["Example.COM".into(), "*.img.example.net".into()]).unwrap();
        assert_eq!(p, ["example.com", "*.img.example.net"]);
        assert!(host_allowed(&p, "example.com"));
        assert!(!host_allowed(&p, "www.example.com"));
        assert!(host_allowed(&p, "a.img.example.net"));
        assert!(host_allowed(&p, "a.b.img.example.net"));
        assert!(!host_allowed(&p, "img.example.net"));
        assert!(!host_allowed(&p, "evilimg.example.net"));
        assert!(normalize_patterns(&["http://x.com/".into()]).is_err());
    }

    #[test]
    fn bucket_allows_burst_then_refuses_then_refills() {
        let rl = RateLimiter::new(2, 1.0);
        let t0 = Instant::now();
        assert!(rl.check("a", t0).allowed);
        let second = rl.check("a", t0);
        assert!(second.allowed);
        assert_eq!(second.remaining, 0);
        let third = rl.check("a", t0);
        assert!(!third.allowed);
        assert_eq!(third.retry_after_secs, 1);
        assert_eq!(third.limit, 2);
        // Another token has its own bucket.
        assert!(rl.check("b", t0).allowed);
        assert!(rl.check("a", t0 + Duration::from_millis(1500)).allowed);
    }

    #[tokio::test]
    async fn created_tokens_are_random_and_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let store = edgepurge_control_store::SqliteStore::open(dir.path().join("c.db"), 1).unwrap();
        let a = create_token(&store, "a", &["a.com".into()], false, 1).await.unwrap();
        let b = create_token(&store, "b", &[], true, 1).await.unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 67);
        let found = store.find_token(TokenHash::of(&a)).await.unwrap().unwrap();
        assert_eq!((found.name.as_str(), found.admin), ("a", false));
        assert!(create_token(&store, "a", &["a.com".into()], false, 1).await.is_err());
        assert!(create_token(&store, "c", &[], false, 1).await.is_err());
    }
}
