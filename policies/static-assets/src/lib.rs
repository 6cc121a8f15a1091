//! The `static-assets` policy: caching rules for a site's static files.
//!
//! Declares `cache-rules` and `cache-key`; queue selection and purge scoping stay the
//! built-in defaults.
//!
//! - **Fingerprinted files** — a file name with a hex hash of at least 8 characters between
//!   `.`, `-` or `_` separators, e.g. `app.3f9a8c1d.js` or `app-3f9a8c1d2b.css` — never change
//!   under their name, so a successful response (`200`, `203`, `206`) to `GET`/`HEAD` gets
//!   `fingerprint-ttl-secs` (default one year), whatever the origin says. The hash must mix
//!   digits and letters `a`–`f`: an all-digit run such as `20240101` is far more likely a date
//!   than a hash, and wrongly caching a mutable file for a year is worse than missing a long
//!   TTL (≈2 % of real 8-character hashes are all digits).
//! - **Other files** keep the origin's freshness; when the origin states none (`s-maxage`,
//!   `max-age`, `Expires`), a successful response gets `default-ttl-secs` (default one day,
//!   S3.4).
//! - Responses marked `no-store`, `private` or `no-cache` are never given a TTL, and error
//!   responses keep RFC 9111's rules (a 404 for a not-yet-deployed fingerprinted file must not
//!   stick for a year).
//! - **Directory tags**: every cached object is tagged with each directory above it, so
//!   `/img/icons/a.png` carries `path:/img` and `path:/img/icons`, and purging the tag
//!   `path:/img` drops the whole directory tree (at most [`MAX_PATH_TAGS`] levels). A path
//!   ending in `/` counts as a directory itself. The tags do not name the host: on an edge
//!   serving several hosts, purging `path:/img` drops `/img` of all of them (use a prefix
//!   purge for one host).
//! - **Query strings** (S3.5), by `query-mode`:
//!   - `unique` (default): every unique URL is its own object (`cache-key` returns `None`,
//!     the host's own key). Safe with `?v=2` cache busters.
//!   - `ignore`: the query is dropped from the cache key, so `a.css?v=1` and `a.css` share one
//!     object.
//!   - `bypass`: responses to URLs with a query string are not stored (`store = bypass`).
//!
//! Configuration (strings):
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `fingerprint-ttl-secs` | TTL of fingerprinted files | `31536000` |
//! | `default-ttl-secs` | TTL when the origin states no freshness | `86400` |
//! | `query-mode` | `unique`, `ignore` or `bypass` | `unique` |
//!
//! Invalid values are logged as warnings and replaced by the default.

use edgepurge_sdk::cache_control::has_explicit_freshness;
use edgepurge_sdk::{
    defaults, export, log, CacheControl, CacheDecision, ConfigSource, GuestConfig, Hook, Policy, RequestMeta,
    ResponseMeta, StoreChoice, UrlParts,
};

/// Config key: TTL in seconds of fingerprinted files.
pub const FINGERPRINT_TTL_KEY: &str = "fingerprint-ttl-secs";
/// [`FINGERPRINT_TTL_KEY`] when unset: one year.
pub const DEFAULT_FINGERPRINT_TTL_SECS: u32 = 31_536_000;
/// Config key: TTL in seconds when the origin states no freshness (the built-in key).
pub const DEFAULT_TTL_KEY: &str = defaults::DEFAULT_TTL_KEY;
/// [`DEFAULT_TTL_KEY`] when unset: one day.
pub const DEFAULT_DEFAULT_TTL_SECS: u32 = 86_400;
/// Config key: the query-string mode, see [`QueryMode`].
pub const QUERY_MODE_KEY: &str = "query-mode";
/// The shortest hex run that counts as a fingerprint.
pub const MIN_HASH_LEN: usize = 8;
/// The most directory tags attached to one object.
pub const MAX_PATH_TAGS: usize = 16;

/// How URLs with a query string are cached (S3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryMode {
    /// Every unique URL is its own object.
    #[default]
    Unique,
    /// The query string is not part of the cache key.
    Ignore,
    /// URLs with a query string are not stored.
    Bypass,
}

impl QueryMode {
    /// The configured mode; an unknown value is logged and replaced by the default.
    pub fn configured() -> QueryMode {
        match GuestConfig.get(QUERY_MODE_KEY).as_deref().map(str::trim) {
            None => QueryMode::default(),
            Some("unique") => QueryMode::Unique,
            Some("ignore") => QueryMode::Ignore,
            Some("bypass") => QueryMode::Bypass,
            Some(other) => {
                log::warn(&format!(
                    "config key `{QUERY_MODE_KEY}` has value `{other}`, not one of unique, ignore, bypass; using unique"
                ));
                QueryMode::default()
            }
        }
    }
}

/// The static-assets policy.
pub struct StaticAssets;

impl Policy for StaticAssets {
    const NAME: &'static str = "static-assets";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const HOOKS: &'static [Hook] = &[Hook::CacheRules, Hook::CacheKey];

    fn cache_rules(request: &RequestMeta, response: &ResponseMeta) -> CacheDecision {
        let Some(url) = UrlParts::parse(&request.url) else {
            return CacheDecision::default();
        };
        if QueryMode::configured() == QueryMode::Bypass && url.query.is_some_and(|q| !q.is_empty()) {
            return CacheDecision { store: StoreChoice::Bypass, ..CacheDecision::default() };
        }
        let cc = CacheControl::from_headers(&response.headers);
        if cc.forbids_shared_reuse() || cc.has("private") {
            return CacheDecision::default();
        }
        let success = matches!(request.method.as_str(), "GET" | "HEAD") && matches!(response.status, 200 | 203 | 206);
        let ttl_secs = if !success {
            None
        } else if is_fingerprinted(&url) {
            Some(ttl_config(FINGERPRINT_TTL_KEY, DEFAULT_FINGERPRINT_TTL_SECS))
        } else if has_explicit_freshness(&response.headers) {
            None
        } else {
            Some(ttl_config(DEFAULT_TTL_KEY, DEFAULT_DEFAULT_TTL_SECS))
        };
        CacheDecision { ttl_secs, tags: path_tags(&url), ..CacheDecision::default() }
    }

    fn cache_key(request: &RequestMeta) -> Option<String> {
        if QueryMode::configured() != QueryMode::Ignore {
            return None;
        }
        let url = UrlParts::parse(&request.url)?;
        url.query.map(|_| url.without_query())
    }
}

export!(StaticAssets);

/// A TTL from the config, or `default` (an unparsable value is logged by `get_parsed`).
fn ttl_config(key: &str, default: u32) -> u32 {
    GuestConfig.get_parsed(key).unwrap_or(default)
}

/// Whether the file name of `url` carries a content hash (see the crate docs).
pub fn is_fingerprinted(url: &UrlParts<'_>) -> bool {
    let file = url.path.rsplit('/').next().unwrap_or("");
    let stem = match url.extension() {
        Some(ext) => &file[..file.len() - ext.len() - 1],
        None => file,
    };
    stem.split(['.', '-', '_']).any(is_hash)
}

/// A run of at least [`MIN_HASH_LEN`] hex digits mixing digits and letters.
fn is_hash(part: &str) -> bool {
    part.len() >= MIN_HASH_LEN
        && part.bytes().all(|b| b.is_ascii_hexdigit())
        && part.bytes().any(|b| b.is_ascii_digit())
        && part.bytes().any(|b| b.is_ascii_alphabetic())
}

/// The directory tags of `url`: `path:/a`, `path:/a/b`, ... for each directory above the file
/// (and the last segment too when the path ends with `/`), at most [`MAX_PATH_TAGS`].
pub fn path_tags(url: &UrlParts<'_>) -> Vec<String> {
    let segments: Vec<&str> = url.segments().collect();
    let dirs = if url.path.ends_with('/') { segments.len() } else { segments.len().saturating_sub(1) };
    let mut tags = Vec::new();
    let mut dir = String::from("path:");
    for segment in segments.iter().take(dirs.min(MAX_PATH_TAGS)) {
        dir.push('/');
        dir.push_str(segment);
        tags.push(dir.clone());
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepurge_sdk::config::set_test_config;
    use edgepurge_sdk::Header;

    fn get(url: &str) -> RequestMeta {
        RequestMeta { method: "GET".into(), url: url.into(), headers: vec![] }
    }

    fn resp(status: u16, cache_control: Option<&str>) -> ResponseMeta {
        ResponseMeta {
            status,
            headers: cache_control.map(|cc| vec![Header::new("cache-control", cc)]).unwrap_or_default(),
        }
    }

    fn rules(url: &str, response: &ResponseMeta) -> CacheDecision {
        StaticAssets::cache_rules(&get(url), response)
    }

    fn fingerprinted(url: &str) -> bool {
        is_fingerprinted(&UrlParts::parse(url).unwrap())
    }

    fn tags(url: &str) -> Vec<String> {
        path_tags(&UrlParts::parse(url).unwrap())
    }

    #[test]
    fn recognises_fingerprints() {
        assert!(fingerprinted("https://a.com/js/app.3f9a8c1d.js"));
        assert!(fingerprinted("https://a.com/css/app-3f9a8c1d2b.css"));
        assert!(fingerprinted("https://a.com/main_0a1b2c3d4e5f.min.js"));
        assert!(fingerprinted("https://a.com/3F9A8C1D.woff2"));
        assert!(!fingerprinted("https://a.com/js/app.3f9a8c1.js"), "7 hex chars is too short");
        assert!(!fingerprinted("https://a.com/photos/20240101.jpg"), "all digits: a date");
        assert!(!fingerprinted("https://a.com/deadbeefcafe.png"), "all letters: a word");
        assert!(!fingerprinted("https://a.com/3f9a8c1d2b/app.js"), "only the file name counts");
        assert!(!fingerprinted("https://a.com/app.js"));
        assert!(!fingerprinted("https://a.com/"));
    }

    #[test]
    fn fingerprinted_files_get_a_year_whatever_the_origin_says() {
        set_test_config([]);
        let url = "https://a.com/js/app.3f9a8c1d.js";
        let year = Some(31_536_000);
        assert_eq!(rules(url, &resp(200, None)).ttl_secs, year);
        assert_eq!(
            rules(url, &resp(200, Some("max-age=300"))),
            CacheDecision { ttl_secs: year, tags: vec!["path:/js".into()], ..Default::default() }
        );
        set_test_config([(FINGERPRINT_TTL_KEY, "604800")]);
        assert_eq!(rules(url, &resp(200, None)).ttl_secs, Some(604_800));
    }

    #[test]
    fn other_files_get_the_default_ttl_only_without_origin_freshness() {
        set_test_config([]);
        let url = "https://a.com/img/logo.png";
        assert_eq!(rules(url, &resp(200, None)).ttl_secs, Some(86_400));
        assert_eq!(rules(url, &resp(200, Some("public"))).ttl_secs, Some(86_400));
        assert_eq!(rules(url, &resp(200, Some("max-age=60"))).ttl_secs, None);
        let expires =
            ResponseMeta { status: 200, headers: vec![Header::new("expires", "Thu, 01 Dec 2039 16:00:00 GMT")] };
        assert_eq!(rules(url, &expires).ttl_secs, None);
        set_test_config([(DEFAULT_TTL_KEY, "600")]);
        assert_eq!(rules(url, &resp(200, None)).ttl_secs, Some(600));
    }

    #[test]
    fn private_no_store_and_errors_get_no_ttl() {
        set_test_config([]);
        let url = "https://a.com/js/app.3f9a8c1d.js";
        for cc in ["no-store", "private", "no-cache", "private=\"set-cookie\""] {
            assert!(rules(url, &resp(200, Some(cc))).is_no_override(), "{cc}");
        }
        assert_eq!(rules(url, &resp(404, None)), CacheDecision { tags: vec!["path:/js".into()], ..Default::default() });
        let post = RequestMeta { method: "POST".into(), ..get(url) };
        assert_eq!(StaticAssets::cache_rules(&post, &resp(200, None)).ttl_secs, None);
    }

    #[test]
    fn tags_name_every_directory_above_the_file() {
        assert_eq!(tags("https://a.com/img/icons/a.png"), ["path:/img", "path:/img/icons"]);
        assert_eq!(tags("https://a.com/docs/guide/"), ["path:/docs", "path:/docs/guide"]);
        assert_eq!(tags("https://a.com/a.png"), Vec::<String>::new());
        assert_eq!(tags("https://a.com/"), Vec::<String>::new());
        let deep = format!("https://a.com{}/f.txt", "/d".repeat(40));
        assert_eq!(tags(&deep).len(), MAX_PATH_TAGS);
    }

    #[test]
    fn query_mode_unique_is_the_default() {
        set_test_config([]);
        assert_eq!(StaticAssets::cache_key(&get("https://a.com/a.css?v=2")), None);
        assert_eq!(rules("https://a.com/a.css?v=2", &resp(200, None)).store, StoreChoice::Rfc9111);
    }

    #[test]
    fn query_mode_ignore_drops_the_query_from_the_key() {
        set_test_config([(QUERY_MODE_KEY, "ignore")]);
        let key = |url: &str| StaticAssets::cache_key(&get(url));
        assert_eq!(key("https://a.com/css/a.css?v=2&x=1").as_deref(), Some("https://a.com/css/a.css"));
        assert_eq!(key("https://a.com/css/a.css"), None);
        assert_eq!(rules("https://a.com/css/a.css?v=2", &resp(200, None)).ttl_secs, Some(86_400));
    }

    #[test]
    fn query_mode_bypass_does_not_store_urls_with_a_query() {
        set_test_config([(QUERY_MODE_KEY, " bypass ")]);
        let bypass = CacheDecision { store: StoreChoice::Bypass, ..Default::default() };
        assert_eq!(rules("https://a.com/img/a.png?w=100", &resp(200, Some("max-age=60"))), bypass);
        assert_eq!(rules("https://a.com/img/a.png", &resp(200, None)).store, StoreChoice::Rfc9111);
        assert_eq!(StaticAssets::cache_key(&get("https://a.com/img/a.png?w=100")), None);
    }

    #[test]
    fn invalid_config_falls_back_to_defaults() {
        set_test_config([(QUERY_MODE_KEY, "sometimes"), (DEFAULT_TTL_KEY, "a day"), (FINGERPRINT_TTL_KEY, "-1")]);
        assert_eq!(QueryMode::configured(), QueryMode::Unique);
        assert_eq!(rules("https://a.com/x.txt", &resp(200, None)).ttl_secs, Some(86_400));
        assert_eq!(rules("https://a.com/x.0a1b2c3d.txt", &resp(200, None)).ttl_secs, Some(31_536_000));
    }
}
