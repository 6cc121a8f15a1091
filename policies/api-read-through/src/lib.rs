//! The `api-read-through` policy: a CDN as a read-through cache for a GET JSON API (S1).
//!
//! Declares `cache-rules` and `cache-key`; queue selection and purge scoping stay the
//! built-in defaults.
//!
//! Both hooks act only on **API paths**: URLs whose path starts with the configured
//! `api-prefix` (a plain string prefix, default `/api/`; set it to `/` to treat the whole host
//! as an API). Everything else keeps the host's behaviour: the built-in `cache-rules` default
//! (no override, or `default-ttl-secs` when the operator configured it) and the host's own
//! cache key.
//!
//! - `cache-rules`: a `GET` or `HEAD` whose response is `200` with a JSON `content-type`
//!   (`application/json` or any `+json` type) gets the origin's `s-maxage`, else its `max-age`,
//!   as TTL (S1.2); when the origin states no freshness at all it gets `api-ttl-secs` (default
//!   180 s). An `Expires`-only response keeps RFC 9111's reading of `Expires`. Responses marked
//!   `no-store`, `private` (with or without field names) or `no-cache`, and responses to
//!   requests carrying `Authorization`, are never given a TTL: the policy returns no override
//!   and RFC 9111 decides. The policy never forces storage (`store` stays `rfc9111`). Cached
//!   API responses are tagged `api:<first path segment after the prefix>`, e.g.
//!   `/api/users/7` → `api:users`, so one purge by tag drops a whole resource collection.
//! - `cache-key`: on API paths, query parameters whose name is not in `query-allow` are
//!   dropped (tracking parameters, cache busters), and the kept ones are sorted by name, so
//!   `?sort=name&page=2&utm_source=x` and `?page=2&sort=name` share the key
//!   `…?page=2&sort=name`. Repeated parameters keep their relative order (`id=2&id=1` may mean
//!   something different from `id=1&id=2`). A parameter without value is keyed as its bare
//!   name (`q=` and `q` share a key). When the filtered URL equals the request URL the hook
//!   returns `None` (the host's own key, which also honours `Vary`), as it does for non-API
//!   paths.
//!
//! Configuration (strings):
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `api-prefix` | path prefix of the API; must start with `/` | `/api/` |
//! | `api-ttl-secs` | TTL when the origin states no freshness | `180` |
//! | `query-allow` | comma-separated query parameter names kept in the key; empty keeps none | `page,per_page,id,q,sort` |
//! | `default-ttl-secs` | built-in default, used for non-API responses only | unset |
//!
//! Invalid values are logged as warnings and replaced by the default.

use edgepurge_sdk::cache_control::has_explicit_freshness;
use edgepurge_sdk::{
    defaults, export, log, CacheControl, CacheDecision, ConfigSource, GuestConfig, Hook, Policy, RequestMeta,
    ResponseMeta, UrlParts,
};

/// Config key: path prefix of the API.
pub const API_PREFIX_KEY: &str = "api-prefix";
/// [`API_PREFIX_KEY`] when unset.
pub const DEFAULT_API_PREFIX: &str = "/api/";
/// Config key: TTL in seconds for JSON responses whose origin states no freshness.
pub const API_TTL_KEY: &str = "api-ttl-secs";
/// [`API_TTL_KEY`] when unset: 180 s, as in S1.2.
pub const DEFAULT_API_TTL_SECS: u32 = 180;
/// Config key: comma-separated query parameter names kept in the cache key.
pub const QUERY_ALLOW_KEY: &str = "query-allow";
/// [`QUERY_ALLOW_KEY`] when unset.
pub const DEFAULT_QUERY_ALLOW: &str = "page,per_page,id,q,sort";

/// The api-read-through policy.
pub struct ApiReadThrough;

impl Policy for ApiReadThrough {
    const NAME: &'static str = "api-read-through";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const HOOKS: &'static [Hook] = &[Hook::CacheRules, Hook::CacheKey];

    fn cache_rules(request: &RequestMeta, response: &ResponseMeta) -> CacheDecision {
        let Some(url) = UrlParts::parse(&request.url) else {
            return CacheDecision::default();
        };
        let prefix = api_prefix();
        if !url.path.starts_with(&prefix) {
            return defaults::cache_rules(request, response, &GuestConfig);
        }
        let cacheable = matches!(request.method.as_str(), "GET" | "HEAD")
            && response.status == 200
            && is_json(response.header("content-type"))
            && request.header("authorization").is_none();
        let cc = CacheControl::from_headers(&response.headers);
        if !cacheable || cc.forbids_shared_reuse() || cc.has("private") {
            return CacheDecision::default();
        }
        let ttl = match cc.s_maxage().or(cc.max_age()) {
            Some(secs) => Some(secs),
            None if has_explicit_freshness(&response.headers) => None,
            None => Some(GuestConfig.get_parsed(API_TTL_KEY).unwrap_or(DEFAULT_API_TTL_SECS)),
        };
        let tags = collection(&url, &prefix).map(|c| vec![format!("api:{c}")]).unwrap_or_default();
        CacheDecision { ttl_secs: ttl, tags, ..CacheDecision::default() }
    }

    fn cache_key(request: &RequestMeta) -> Option<String> {
        let url = UrlParts::parse(&request.url)?;
        if !url.path.starts_with(&api_prefix()) {
            return None;
        }
        let key = allowed_query_key(&url, &query_allow());
        (key != request.url).then_some(key)
    }
}

export!(ApiReadThrough);

/// The configured API prefix; a value not starting with `/` is logged and replaced by
/// [`DEFAULT_API_PREFIX`].
fn api_prefix() -> String {
    match GuestConfig.get(API_PREFIX_KEY) {
        Some(p) if p.trim().starts_with('/') => p.trim().to_owned(),
        Some(p) => {
            log::warn(&format!("config key `{API_PREFIX_KEY}` has value `{p}` that does not start with `/`; using `{DEFAULT_API_PREFIX}`"));
            DEFAULT_API_PREFIX.to_owned()
        }
        None => DEFAULT_API_PREFIX.to_owned(),
    }
}

/// The configured allow-list of query parameter names (empty entries ignored).
fn query_allow() -> Vec<String> {
    let raw = GuestConfig.get(QUERY_ALLOW_KEY).unwrap_or_else(|| DEFAULT_QUERY_ALLOW.to_owned());
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Whether a `content-type` value names JSON: `application/json` or a `+json` type,
/// parameters and case ignored.
pub fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    media == "application/json" || (media.contains('/') && media.ends_with("+json"))
}

/// The first path segment after `prefix` (`users` of `/api/users/7` under `/api/`), if any.
pub fn collection<'a>(url: &UrlParts<'a>, prefix: &str) -> Option<&'a str> {
    let skip = prefix.split('/').filter(|s| !s.is_empty()).count();
    url.segments().nth(skip)
}

/// `url` with only the query parameters named in `allow`, sorted by name (stable, so repeated
/// parameters keep their order).
pub fn allowed_query_key(url: &UrlParts<'_>, allow: &[String]) -> String {
    let mut kept: Vec<(&str, &str)> = url.query_pairs().filter(|(k, _)| allow.iter().any(|a| a == k)).collect();
    kept.sort_by(|a, b| a.0.cmp(b.0));
    url.with_query_pairs(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepurge_sdk::config::set_test_config;
    use edgepurge_sdk::{Header, StoreChoice};

    fn get(url: &str) -> RequestMeta {
        RequestMeta { method: "GET".into(), url: url.into(), headers: vec![] }
    }

    fn json(status: u16, cache_control: Option<&str>) -> ResponseMeta {
        let mut headers = vec![Header::new("content-type", "application/json; charset=utf-8")];
        headers.extend(cache_control.map(|cc| Header::new("cache-control", cc)));
        ResponseMeta { status, headers }
    }

    fn ttl_and_tags(ttl: Option<u32>, tags: &[&str]) -> CacheDecision {
        CacheDecision { ttl_secs: ttl, tags: tags.iter().map(|t| t.to_string()).collect(), ..Default::default() }
    }

    fn rules(req: &RequestMeta, resp: &ResponseMeta) -> CacheDecision {
        ApiReadThrough::cache_rules(req, resp)
    }

    #[test]
    fn json_without_freshness_gets_the_api_ttl_and_a_collection_tag() {
        set_test_config([]);
        let d = rules(&get("https://a.com/api/users/7"), &json(200, None));
        assert_eq!(d, ttl_and_tags(Some(180), &["api:users"]));
        assert_eq!(d.store, StoreChoice::Rfc9111, "never forces storage");
        set_test_config([(API_TTL_KEY, "30")]);
        assert_eq!(rules(&get("https://a.com/api/users/7"), &json(200, Some("public"))).ttl_secs, Some(30));
    }

    #[test]
    fn the_origin_ttl_wins_with_s_maxage_first() {
        set_test_config([]);
        let req = get("https://a.com/api/orders?page=2");
        assert_eq!(rules(&req, &json(200, Some("public, max-age=60"))), ttl_and_tags(Some(60), &["api:orders"]));
        assert_eq!(rules(&req, &json(200, Some("max-age=60, s-maxage=600"))).ttl_secs, Some(600));
        // Expires alone: RFC 9111 reads it; the policy only tags.
        let mut resp = json(200, None);
        resp.headers.push(Header::new("expires", "Thu, 01 Dec 2039 16:00:00 GMT"));
        assert_eq!(rules(&req, &resp), ttl_and_tags(None, &["api:orders"]));
    }

    #[test]
    fn private_and_no_store_are_never_overridden() {
        set_test_config([]);
        let req = get("https://a.com/api/me");
        for cc in ["no-store", "private", "private=\"set-cookie\"", "no-cache", "max-age=60, private"] {
            assert!(rules(&req, &json(200, Some(cc))).is_no_override(), "{cc}");
        }
        let mut authed = req.clone();
        authed.headers.push(Header::new("authorization", "Bearer x"));
        assert!(rules(&authed, &json(200, None)).is_no_override());
    }

    #[test]
    fn only_get_and_head_json_200_are_cached() {
        set_test_config([]);
        let url = "https://a.com/api/users";
        assert_eq!(rules(&RequestMeta { method: "HEAD".into(), ..get(url) }, &json(200, None)).ttl_secs, Some(180));
        assert!(rules(&RequestMeta { method: "POST".into(), ..get(url) }, &json(200, None)).is_no_override());
        assert!(rules(&get(url), &json(404, None)).is_no_override());
        let html = ResponseMeta { status: 200, headers: vec![Header::new("content-type", "text/html")] };
        assert!(rules(&get(url), &html).is_no_override());
        let problem =
            ResponseMeta { status: 200, headers: vec![Header::new("Content-Type", "application/vnd.api+JSON")] };
        assert_eq!(rules(&get(url), &problem).ttl_secs, Some(180));
    }

    #[test]
    fn non_api_paths_get_the_built_in_default() {
        set_test_config([]);
        assert!(rules(&get("https://a.com/users.json"), &json(200, None)).is_no_override());
        set_test_config([(defaults::DEFAULT_TTL_KEY, "3600")]);
        assert_eq!(rules(&get("https://a.com/users.json"), &json(200, None)), ttl_and_tags(Some(3600), &[]));
        // The prefix root itself has no collection: cached, untagged.
        assert_eq!(rules(&get("https://a.com/api/"), &json(200, None)), ttl_and_tags(Some(180), &[]));
    }

    #[test]
    fn the_prefix_is_configurable_and_validated() {
        set_test_config([(API_PREFIX_KEY, "/v2/")]);
        assert_eq!(rules(&get("https://a.com/v2/items/1"), &json(200, None)).tags, ["api:items"]);
        assert!(rules(&get("https://a.com/api/items/1"), &json(200, None)).is_no_override());
        set_test_config([(API_PREFIX_KEY, "/")]);
        assert_eq!(rules(&get("https://a.com/items/1"), &json(200, None)).tags, ["api:items"]);
        set_test_config([(API_PREFIX_KEY, "v2")]);
        assert_eq!(rules(&get("https://a.com/api/items"), &json(200, None)).tags, ["api:items"]);
    }

    #[test]
    fn the_key_keeps_allowed_parameters_sorted() {
        set_test_config([]);
        let key = |url: &str| ApiReadThrough::cache_key(&get(url));
        let expected = Some("https://a.com/api/users?page=2&sort=name".to_owned());
        assert_eq!(key("https://a.com/api/users?sort=name&page=2&utm_source=x"), expected);
        assert_eq!(key("https://a.com/api/users?page=2&sort=name&fbclid=1"), expected);
        assert_eq!(key("https://a.com/api/users?sort=name&page=2"), expected);
        // Already canonical, no query, or not an API path: the host's own key.
        assert_eq!(key("https://a.com/api/users?page=2&sort=name"), None);
        assert_eq!(key("https://a.com/api/users"), None);
        assert_eq!(key("https://a.com/img/a.png?utm_source=x"), None);
        // Repeated parameters keep their order; bare names stand for empty values.
        assert_eq!(key("https://a.com/api/u?id=2&x=1&id=1&q="), Some("https://a.com/api/u?id=2&id=1&q".to_owned()));
    }

    #[test]
    fn the_allow_list_is_configurable() {
        set_test_config([(QUERY_ALLOW_KEY, " b , a ,")]);
        let key = ApiReadThrough::cache_key(&get("https://a.com:8443/api/x?b=1&c=3&a=2"));
        assert_eq!(key.as_deref(), Some("https://a.com:8443/api/x?a=2&b=1"));
        set_test_config([(QUERY_ALLOW_KEY, "")]);
        assert_eq!(ApiReadThrough::cache_key(&get("https://a.com/api/x?a=1")).as_deref(), Some("https://a.com/api/x"));
    }

    #[test]
    fn json_detection() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON ; charset=utf-8")));
        assert!(is_json(Some("application/problem+json")));
        assert!(!is_json(Some("text/json-ish")));
        assert!(!is_json(Some("+json")));
        assert!(!is_json(None));
    }
}
