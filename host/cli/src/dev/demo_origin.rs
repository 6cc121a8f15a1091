//! The demo origin of `edgepurge dev`: a small site and JSON API that behaves like a well-made
//! origin, so the cluster shows caching, revalidation and purges without any setup.
//!
//! Every resource sends `Cache-Control`, a strong `ETag` (SHA-256 of the body, answered with 304
//! on `If-None-Match`), `Last-Modified` (304 on `If-Modified-Since`) and `Surrogate-Key`. A body
//! stays byte-identical until `POST /_touch[?path=P]` makes a new version (new timestamp, new
//! ETag): the body's "generated at" then shows whether an edge still serves the old copy, and
//! `x-demo-origin-hits` (per path) shows how often the origin was asked. `GET /_stats` answers
//! the counts as JSON, uncacheable.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

/// How many products `/api/products` lists (`/api/products/1` … this).
pub const PRODUCTS: u32 = 5;
/// Requests in flight when the origin stops get this long to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

const PAGE_CC: &str = "public, max-age=300";
const ASSET_CC: &str = "public, max-age=86400, immutable";
const API_CC: &str = "public, max-age=60, stale-while-revalidate=30";

/// The site's content versions and hit counters (shared by every connection).
#[derive(Debug)]
pub struct Site {
    /// When the current version of each path was made; paths not listed use `started`.
    versions: Mutex<BTreeMap<String, SystemTime>>,
    started: SystemTime,
    hits: Mutex<BTreeMap<String, u64>>,
}

/// One resource as rendered: what the response carries besides the validators.
struct Rendered {
    content_type: &'static str,
    cache_control: &'static str,
    surrogate_key: String,
    body: String,
}

impl Site {
    /// A site whose content versions all date from now.
    pub fn new() -> Self {
        Site { versions: Mutex::default(), started: whole_seconds(SystemTime::now()), hits: Mutex::default() }
    }

    fn version(&self, path: &str) -> SystemTime {
        self.versions.lock().expect("versions lock").get(path).copied().unwrap_or(self.started)
    }

    /// Makes a new version of `path` (every path when `None`). `Last-Modified` has whole
    /// seconds, so a new version is always at least a second newer than the one it replaces.
    pub fn touch(&self, path: Option<&str>) -> Vec<String> {
        let paths: Vec<String> = match path {
            Some(p) => vec![p.to_owned()],
            None => all_paths(),
        };
        let now = whole_seconds(SystemTime::now());
        let mut versions = self.versions.lock().expect("versions lock");
        for p in &paths {
            let old = versions.get(p).copied().unwrap_or(self.started);
            versions.insert(p.clone(), now.max(old + Duration::from_secs(1)));
        }
        paths
    }

    fn count(&self, path: &str) -> u64 {
        let mut hits = self.hits.lock().expect("hits lock");
        let n = hits.entry(path.to_owned()).or_insert(0);
        *n += 1;
        *n
    }

    /// The answer to one request (no I/O: the server and the unit tests both call this).
    pub fn respond(&self, method: &Method, target: &str, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        match (method, path) {
            (&Method::GET | &Method::HEAD, "/_stats") => self.stats(),
            (&Method::POST, "/_touch") => {
                let one = query.split('&').find_map(|kv| kv.strip_prefix("path="));
                match one {
                    Some(p) if render(p, SystemTime::now()).is_none() => plain(StatusCode::NOT_FOUND, "no such page\n"),
                    _ => {
                        let touched = self.touch(one);
                        let body = serde_json::json!({ "touched": touched }).to_string();
                        no_store(StatusCode::OK, "application/json", body)
                    }
                }
            }
            (&Method::GET | &Method::HEAD, _) => self.resource(method, path, headers),
            _ => {
                let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "the demo origin answers GET and HEAD\n");
                resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                resp
            }
        }
    }

    fn resource(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let version = self.version(path);
        let Some(page) = render(path, version) else {
            return plain(StatusCode::NOT_FOUND, &format!("{path} is not on the demo site; try /\n"));
        };
        let hits = self.count(path);
        let etag = format!("\"{}\"", hex(&Sha256::digest(page.body.as_bytes())[..16]));
        let not_modified = match headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
            // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2), compared weakly.
            Some(list) => list.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag),
            None => headers
                .get(header::IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .is_some_and(|since| version <= since),
        };
        let (status, body) = if not_modified {
            (StatusCode::NOT_MODIFIED, Bytes::new())
        } else if method == Method::HEAD {
            (StatusCode::OK, Bytes::new())
        } else {
            (StatusCode::OK, Bytes::from(page.body.clone()))
        };
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        let value = |s: &str| HeaderValue::from_str(s).expect("header values are ASCII");
        if status == StatusCode::OK {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(page.content_type));
            if method == Method::HEAD {
                h.insert(header::CONTENT_LENGTH, value(&page.body.len().to_string()));
            }
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(page.cache_control));
        h.insert(header::ETAG, value(&etag));
        h.insert(header::LAST_MODIFIED, value(&httpdate::fmt_http_date(version)));
        h.insert("surrogate-key", value(&page.surrogate_key));
        h.insert("x-demo-origin-hits", value(&hits.to_string()));
        resp
    }

    fn stats(&self) -> Response<Full<Bytes>> {
        let hits = self.hits.lock().expect("hits lock").clone();
        let total: u64 = hits.values().sum();
        let body = serde_json::json!({ "total": total, "hits": hits }).to_string();
        no_store(StatusCode::OK, "application/json", body)
    }
}

impl Default for Site {
    fn default() -> Self {
        Self::new()
    }
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    no_store(status, "text/plain; charset=utf-8", text.to_owned())
}

fn no_store(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Every path the site serves.
pub fn all_paths() -> Vec<String> {
    let mut paths: Vec<String> =
        ["/", "/about.html", "/css/site.css", "/img/logo.svg", "/api/products"].map(String::from).into();
    paths.extend((1..=PRODUCTS).map(|id| format!("/api/products/{id}")));
    paths
}

const PRODUCT_NAMES: [&str; PRODUCTS as usize] =
    ["Anvil", "Rocket skates", "Giant magnet", "Tornado seeds", "Bird seed"];

/// The resource at `path` as of version `at`, or `None` when the site has no such path.
fn render(path: &str, at: SystemTime) -> Option<Rendered> {
    let when = httpdate::fmt_http_date(at);
    let page = |title: &str, key: &str, main: &str| {
        Rendered {
        content_type: "text/html; charset=utf-8",
        cache_control: PAGE_CC,
        surrogate_key: format!("site page {key}"),
        body: format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title} — edgepurge demo</title>\n\
             <link rel=\"stylesheet\" href=\"/css/site.css\"></head>\n<body>\n\
             <header><img src=\"/img/logo.svg\" alt=\"\" width=\"32\" height=\"32\"> <a href=\"/\">edgepurge demo</a> · \
             <a href=\"/about.html\">about</a> · <a href=\"/api/products\">products API</a></header>\n\
             <main>\n<h1>{title}</h1>\n{main}\n</main>\n<footer>generated at {when}</footer>\n</body></html>\n"
        ),
    }
    };
    let product = |id: u32| {
        let name = PRODUCT_NAMES[(id - 1) as usize];
        serde_json::json!({ "id": id, "name": name, "price_cents": 1999 + id * 500, "generated_at": when })
    };
    Some(match path {
        "/" => page(
            "Home",
            "page-home",
            "<p>Served through an edgepurge edge. Purge this page by URL, by the tag <code>page</code> or \
             <code>site</code>, and watch <code>Cache-Status</code> go from hit to miss.</p>\n<ul>\n\
             <li><a href=\"/about.html\">/about.html</a></li>\n<li><a href=\"/css/site.css\">/css/site.css</a></li>\n\
             <li><a href=\"/img/logo.svg\">/img/logo.svg</a></li>\n<li><a href=\"/api/products\">/api/products</a></li>\n\
             <li><a href=\"/api/products/3\">/api/products/3</a></li>\n</ul>",
        ),
        "/about.html" => page(
            "About",
            "page-about",
            "<p>This demo origin sends Cache-Control, a strong ETag, Last-Modified and Surrogate-Key on every \
             resource. <code>POST /_touch</code> makes new versions; <code>GET /_stats</code> counts origin hits.</p>",
        ),
        "/css/site.css" => Rendered {
            content_type: "text/css; charset=utf-8",
            cache_control: ASSET_CC,
            surrogate_key: "site assets css".into(),
            body: format!(
                "/* edgepurge demo stylesheet, generated at {when} */\nbody {{ font-family: sans-serif; \
                 max-width: 40em; margin: 2em auto; }}\nfooter {{ color: #666; margin-top: 2em; }}\n"
            ),
        },
        "/img/logo.svg" => Rendered {
            content_type: "image/svg+xml",
            cache_control: ASSET_CC,
            surrogate_key: "site assets img".into(),
            body: format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\"><!-- generated at {when} -->\
                 <circle cx=\"16\" cy=\"16\" r=\"14\" fill=\"#2a7ae2\"/><path d=\"M9 16h14M16 9v14\" \
                 stroke=\"#fff\" stroke-width=\"3\"/></svg>\n"
            ),
        },
        "/api/products" => Rendered {
            content_type: "application/json",
            cache_control: API_CC,
            surrogate_key: "api products".into(),
            body: serde_json::json!({
                "products": (1..=PRODUCTS).map(product).collect::<Vec<_>>(),
                "generated_at": when,
            })
            .to_string(),
        },
        _ => {
            let id: u32 = path.strip_prefix("/api/products/")?.parse().ok().filter(|id| (1..=PRODUCTS).contains(id))?;
            Rendered {
                content_type: "application/json",
                cache_control: API_CC,
                surrogate_key: format!("api products product-{id}"),
                body: product(id).to_string(),
            }
        }
    })
}

/// The demo origin with its listener bound.
pub struct BoundOrigin {
    listener: TcpListener,
    site: Arc<Site>,
}

impl BoundOrigin {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for the demo origin: {e} (try --origin-port)"))?;
        Ok(BoundOrigin { listener, site: Arc::new(Site::new()) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves HTTP/1.1 until `shutdown` completes, then lets requests in flight finish.
    pub async fn serve(self, shutdown: impl Future) {
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "demo origin: accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            let site = self.site.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str()).to_owned();
                let resp = site.respond(req.method(), &target, req.headers());
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "demo origin: connection ended with an error");
                }
            });
        }
        drop(self.listener);
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
            tracing::warn!("demo origin: requests still in flight after {DRAIN_TIMEOUT:?}; closing");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(site: &Site, path: &str, headers: &[(&'static str, &str)]) -> Response<Full<Bytes>> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        site.respond(&Method::GET, path, &map)
    }

    fn header<'a>(resp: &'a Response<Full<Bytes>>, name: &str) -> &'a str {
        resp.headers().get(name).unwrap_or_else(|| panic!("no {name}")).to_str().unwrap()
    }

    #[test]
    fn every_path_sends_validators_cache_control_and_surrogate_keys() {
        let site = Site::new();
        for path in all_paths() {
            let resp = get(&site, &path, &[]);
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert!(header(&resp, "etag").starts_with('"'), "{path}: a strong ETag");
            assert!(header(&resp, "cache-control").starts_with("public, max-age="), "{path}");
            assert!(httpdate::parse_http_date(header(&resp, "last-modified")).is_ok(), "{path}");
            assert!(!header(&resp, "surrogate-key").is_empty(), "{path}");
            assert_eq!(header(&resp, "x-demo-origin-hits"), "1", "{path}");
        }
        assert!(header(&get(&site, "/api/products/3", &[]), "surrogate-key").contains("product-3"));
        assert!(header(&get(&site, "/css/site.css", &[]), "cache-control").contains("immutable"));
    }

    #[test]
    fn if_none_match_answers_304_until_the_content_changes() {
        let site = Site::new();
        let first = get(&site, "/", &[]);
        let etag = header(&first, "etag").to_owned();
        let again = get(&site, "/", &[("if-none-match", &etag)]);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&again, "etag"), etag);
        assert_eq!(header(&again, "x-demo-origin-hits"), "2");
        assert_eq!(get(&site, "/", &[("if-none-match", &format!("W/{etag}, \"x\""))]).status(), 304);
        assert_eq!(get(&site, "/", &[("if-none-match", "\"other\"")]).status(), StatusCode::OK);
        site.touch(Some("/"));
        let changed = get(&site, "/", &[("if-none-match", &etag)]);
        assert_eq!(changed.status(), StatusCode::OK);
        assert_ne!(header(&changed, "etag"), etag);
        // Other paths keep their version.
        let css = header(&get(&site, "/css/site.css", &[]), "etag").to_owned();
        assert_eq!(get(&site, "/css/site.css", &[("if-none-match", &css)]).status(), 304);
    }

    #[test]
    fn if_modified_since_answers_304_for_the_current_version() {
        let site = Site::new();
        let first = get(&site, "/about.html", &[]);
        let modified = header(&first, "last-modified").to_owned();
        assert_eq!(get(&site, "/about.html", &[("if-modified-since", &modified)]).status(), 304);
        let earlier = httpdate::fmt_http_date(httpdate::parse_http_date(&modified).unwrap() - Duration::from_secs(1));
        assert_eq!(get(&site, "/about.html", &[("if-modified-since", &earlier)]).status(), StatusCode::OK);
        site.touch(None);
        assert_eq!(get(&site, "/about.html", &[("if-modified-since", &modified)]).status(), StatusCode::OK);
    }

    #[test]
    fn unknown_paths_404_and_stats_are_uncacheable() {
        let site = Site::new();
        assert_eq!(get(&site, "/nope", &[]).status(), StatusCode::NOT_FOUND);
        assert_eq!(get(&site, "/api/products/99", &[]).status(), StatusCode::NOT_FOUND);
        get(&site, "/", &[]);
        let stats = get(&site, "/_stats", &[]);
        assert_eq!(header(&stats, "cache-control"), "no-store");
        assert_eq!(site.respond(&Method::DELETE, "/", &HeaderMap::new()).status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(site.respond(&Method::POST, "/_touch?path=/nope", &HeaderMap::new()).status(), 404);
    }
}
