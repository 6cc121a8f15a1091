//! The edge's end-to-end harness: [`EdgeTest`] starts a real edge (proxy and admin listeners on
//! port 0) in front of programmable [`Origin`]s, with config overrides and a builtin or Wasm
//! policy; [`EdgeClient`] sends real HTTP to it.
//!
//! ```ignore
//! let origin = Origin::start().await;
//! origin.set("/a", Reply::ok("A").cc("max-age=600"));
//! let edge = EdgeTest::new().origin("a.test", &origin).cache("query-mode", "\"ignore\"").start().await;
//! assert!(edge.get("/a").await.is_miss());
//! assert!(edge.get("/a").await.is_hit());
//! edge.shutdown().await;
//! ```
//!
//! Wasm policies come from `make policies` (`target/policies/<name>.wasm`, hostile fixtures in
//! `target/fixtures/`); a missing file fails the test saying so.

mod control;
mod origin;

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use edgepurge_edge::config::EdgeConfig;
use edgepurge_edge::server::Edge;
use edgepurge_policy_runtime::policy::PolicyOptions;
use edgepurge_policy_runtime::{LoadedPolicy, PolicyRuntime, PolicySlot};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

pub use control::{accept, FakeControl, FakeStream, FAKE_LOG_ID};
pub use origin::{http_date_ago, Gate, Origin, Refusing, Reply, PATIENCE};

/// A policy deadline for tests that are not about the deadline (shared, noisy machines).
const GENEROUS_DEADLINE: Duration = Duration::from_secs(5);

/// The repository root (`host/edge/../..`).
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bytes of `target/<dir>/<name>.wasm`, or a failure saying how to build it.
pub fn wasm_bytes(dir: &str, name: &str) -> Vec<u8> {
    let path = repo_root().join("target").join(dir).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}; run `make policies` first", path.display()))
}

/// Loads `target/<dir>/<name>.wasm` with `config` and `deadline`, or fails saying how to build it.
pub async fn load_wasm(dir: &str, name: &str, config: &BTreeMap<String, String>, deadline: Duration) -> LoadedPolicy {
    let bytes = wasm_bytes(dir, name);
    let mut options = PolicyOptions { config: config.clone(), ..PolicyOptions::default() };
    options.limits.deadline = deadline;
    PolicyRuntime::shared()
        .load(&bytes, options)
        .await
        .unwrap_or_else(|e| panic!("policy target/{dir}/{name}.wasm rejected: {e}"))
}

/// Which policy the edge starts with.
enum PolicyChoice {
    Builtin,
    Wasm { dir: &'static str, name: String },
}

/// Builds and starts an edge. Every `[cache]` / `[collapse]` key has the product default unless
/// overridden; values are TOML (`"\"ignore\""` for a string).
pub struct EdgeTest {
    origins: Vec<String>,
    cache: BTreeMap<String, String>,
    collapse: BTreeMap<String, String>,
    policy: PolicyChoice,
    policy_config: BTreeMap<String, String>,
    deadline: Duration,
    default_host: Option<String>,
    top: Vec<String>,
    policy_file: Option<String>,
    sections: Vec<String>,
}

impl Default for EdgeTest {
    fn default() -> Self {
        EdgeTest::new()
    }
}

impl EdgeTest {
    /// An edge with no origins, the builtin policy and the default cache settings.
    pub fn new() -> EdgeTest {
        let cache = [
            ("capacity-mib", "64"),
            ("max-object-mib", "16"),
            ("honor-origin", "true"),
            ("query-mode", "\"unique\""),
            ("honor-client-cache-control", "false"),
        ];
        let collapse = [("max-waiters", "10"), ("wait-timeout-ms", "10000")];
        let map = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        EdgeTest {
            origins: Vec::new(),
            cache: map(&cache),
            collapse: map(&collapse),
            policy: PolicyChoice::Builtin,
            policy_config: BTreeMap::new(),
            deadline: GENEROUS_DEADLINE,
            default_host: None,
            top: Vec::new(),
            policy_file: None,
            sections: Vec::new(),
        }
    }

    /// Routes `host` to `origin` (the first host routed is the client's default `Host`).
    pub fn origin(self, host: &str, origin: &Origin) -> EdgeTest {
        self.origin_url(host, &origin.url(), "")
    }

    /// Routes `host` to `url`, with extra TOML lines for the `[[origin]]` table (timeouts).
    pub fn origin_url(mut self, host: &str, url: &str, extra: &str) -> EdgeTest {
        self.origins.push(format!("[[origin]]\nhost = \"{host}\"\nurl = \"{url}\"\n{extra}\n"));
        self.default_host.get_or_insert_with(|| host.to_owned());
        self
    }

    /// Sets a `[cache]` key (TOML value).
    pub fn cache(mut self, key: &str, value: &str) -> EdgeTest {
        self.cache.insert(key.into(), value.into());
        self
    }

    /// Sets a `[collapse]` key (TOML value).
    pub fn collapse(mut self, key: &str, value: &str) -> EdgeTest {
        self.collapse.insert(key.into(), value.into());
        self
    }

    /// Starts with the shipped policy `target/policies/<name>.wasm`.
    pub fn policy(mut self, name: &str) -> EdgeTest {
        self.policy = PolicyChoice::Wasm { dir: "policies", name: name.into() };
        self
    }

    /// Starts with the hostile fixture `target/fixtures/<name>.wasm`.
    pub fn fixture(mut self, name: &str) -> EdgeTest {
        self.policy = PolicyChoice::Wasm { dir: "fixtures", name: name.into() };
        self
    }

    /// Adds a policy configuration entry (`[policy.config]`).
    pub fn policy_config(mut self, key: &str, value: &str) -> EdgeTest {
        self.policy_config.insert(key.into(), value.into());
        self
    }

    /// The per-call deadline of a Wasm policy (default: a generous 5 s).
    pub fn deadline_ms(mut self, ms: u64) -> EdgeTest {
        self.deadline = Duration::from_millis(ms);
        self
    }

    /// Sets a top-level key (TOML value), e.g. `admin-networks`.
    pub fn top(mut self, key: &str, value: &str) -> EdgeTest {
        self.top.push(format!("{key} = {value}\n"));
        self
    }

    /// Names `path` as `[policy] path` (what `POST /policy/reload` and SIGHUP load); the edge
    /// still starts with the policy chosen by [`EdgeTest::policy`] (builtin by default).
    pub fn policy_file(mut self, path: &str) -> EdgeTest {
        self.policy_file = Some(path.to_owned());
        self
    }

    /// Appends a whole TOML section (e.g. `[control]`) to the configuration.
    pub fn section(mut self, text: &str) -> EdgeTest {
        self.sections.push(text.to_owned());
        self
    }

    /// The configuration text this builder produces.
    pub fn toml(&self) -> String {
        let section = |name: &str, map: &BTreeMap<String, String>| {
            let lines: String = map.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
            format!("[{name}]\n{lines}")
        };
        let policy_config: String = self.policy_config.iter().map(|(k, v)| format!("{k:?} = {v:?}\n")).collect();
        let policy_path = self.policy_file.as_ref().map(|p| format!("path = {p:?}\n")).unwrap_or_default();
        format!(
            "listen = \"127.0.0.1:0\"\nadmin-listen = \"127.0.0.1:0\"\n{}{}{}{}[policy]\n{policy_path}[policy.config]\n{policy_config}{}",
            self.top.concat(),
            self.origins.concat(),
            section("cache", &self.cache),
            section("collapse", &self.collapse),
            self.sections.concat(),
        )
    }

    /// Binds and serves the edge.
    pub async fn start(self) -> Running {
        let toml = self.toml();
        let config = EdgeConfig::parse(&toml, "test.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let policy = match &self.policy {
            PolicyChoice::Builtin => LoadedPolicy::builtin(self.policy_config.clone()),
            PolicyChoice::Wasm { dir, name } => load_wasm(dir, name, &self.policy_config, self.deadline).await,
        };
        let edge = Edge::new(config, policy).unwrap().bind().await.unwrap();
        let client = EdgeClient {
            proxy: edge.proxy_addr(),
            admin: edge.admin_addr(),
            host: self.default_host.unwrap_or_else(|| "a.test".into()),
            http: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        };
        let policy = edge.policy();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(edge.serve(async move {
            let _ = stop_rx.await;
        }));
        Running { client, policy, stop: Some(stop), server: Some(server) }
    }
}

/// A serving edge. Derefs to its [`EdgeClient`].
pub struct Running {
    client: EdgeClient,
    policy: PolicySlot,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Deref for Running {
    type Target = EdgeClient;
    fn deref(&self) -> &EdgeClient {
        &self.client
    }
}

impl Running {
    /// A client to move into spawned tasks.
    pub fn client(&self) -> EdgeClient {
        self.client.clone()
    }

    /// The edge's policy slot (to swap policies while serving).
    pub fn policy(&self) -> PolicySlot {
        self.policy.clone()
    }

    /// Stops the edge and asserts it stopped: `serve` returned `Ok` after draining, and the
    /// proxy port refuses connections.
    pub async fn shutdown(mut self) {
        let proxy = self.client.proxy;
        self.stop.take().unwrap().send(()).expect("the edge is still serving");
        let server = self.server.take().unwrap();
        let result = tokio::time::timeout(Duration::from_secs(40), server).await.expect("the edge did not stop");
        result.expect("the edge's serve task panicked").expect("serve returned an error");
        assert!(tokio::net::TcpStream::connect(proxy).await.is_err(), "the proxy still accepts connections");
    }
}

/// Sends requests to one edge: proxy requests with a default `Host`, admin requests. Cheap to
/// clone. Every call fails the test after [`PATIENCE`] instead of hanging.
#[derive(Clone)]
pub struct EdgeClient {
    /// The proxy listener.
    pub proxy: std::net::SocketAddr,
    /// The admin listener.
    pub admin: std::net::SocketAddr,
    host: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl EdgeClient {
    /// `GET path` on the default host.
    pub async fn get(&self, path: &str) -> Resp {
        self.req(Method::GET, path).send().await
    }

    /// `HEAD path` on the default host.
    pub async fn head(&self, path: &str) -> Resp {
        self.req(Method::HEAD, path).send().await
    }

    /// A request to build (headers, host, body) and [`send`](Req::send).
    pub fn req(&self, method: Method, path: &str) -> Req {
        Req { client: self.clone(), method, path: path.into(), host: self.host.clone(), headers: Vec::new(), body: "" }
    }

    /// Any admin request: the status and the answer's text.
    pub async fn admin(&self, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, String) {
        let req = Request::builder().method(method).uri(format!("http://{}{path}", self.admin));
        let resp = self.send(req.body(Full::new(Bytes::from(body))).unwrap()).await;
        (resp.status, resp.text())
    }

    /// `POST /purge` with `json`: the status and the answer's text.
    pub async fn purge(&self, json: &str) -> (StatusCode, String) {
        let req = Request::post(format!("http://{}/purge", self.admin))
            .body(Full::new(Bytes::from(json.to_owned())))
            .unwrap();
        let resp = self.send(req).await;
        (resp.status, resp.text())
    }

    /// A purge task that must be accepted; returns the report.
    pub async fn purge_ok(&self, kind: &str, target: &str, soft: bool) -> String {
        let json = serde_json::json!({ "id": 1, "kind": kind, "target": target, "soft": soft }).to_string();
        let (status, report) = self.purge(&json).await;
        assert_eq!(status, StatusCode::OK, "purge {json} refused: {report}");
        report
    }

    /// `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let req = Request::get(format!("http://{}/metrics", self.admin)).body(Full::new(Bytes::new())).unwrap();
        let resp = self.send(req).await;
        assert_eq!(resp.status, StatusCode::OK);
        resp.text()
    }

    /// One metric's value (the sample whose name and labels are exactly `series`).
    pub async fn metric(&self, series: &str) -> u64 {
        let text = self.metrics().await;
        let line = text.lines().find(|l| l.strip_prefix(series).is_some_and(|rest| rest.starts_with(' ')));
        let line = line.unwrap_or_else(|| panic!("no metric {series} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// Polls `series` until it reaches `value` (fails after [`PATIENCE`]).
    pub async fn wait_metric(&self, series: &str, value: u64) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let now = self.metric(series).await;
            if now >= value {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{series} is {now}, expected {value}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Writes `bytes` to the proxy on a fresh connection and returns everything it answers
    /// until it closes the connection (or sends a complete `Connection: close` answer).
    pub async fn raw(&self, bytes: &[u8]) -> String {
        let io = async {
            let mut stream = tokio::net::TcpStream::connect(self.proxy).await.unwrap();
            // The server may answer and close before reading everything: ignore write errors.
            let _ = stream.write_all(bytes).await;
            let mut out = Vec::new();
            let _ = stream.read_to_end(&mut out).await;
            String::from_utf8_lossy(&out).into_owned()
        };
        tokio::time::timeout(PATIENCE, io).await.expect("the edge did not answer the raw request")
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Resp {
        let what = format!("{} {}", req.method(), req.uri());
        let io = async {
            let resp = self.http.request(req).await.unwrap_or_else(|e| panic!("{what}: {e}"));
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.unwrap_or_else(|e| panic!("{what}: body: {e}")).to_bytes();
            Resp { status: parts.status, headers: parts.headers, body }
        };
        tokio::time::timeout(PATIENCE, io).await.unwrap_or_else(|_| panic!("{what} hung"))
    }

    /// Sends `req` and returns as soon as the head arrives, with the body still streaming.
    pub async fn send_streaming(&self, req: Req) -> http::Response<hyper::body::Incoming> {
        let what = format!("{} {}", req.method, req.path);
        let resp = tokio::time::timeout(PATIENCE, self.http.request(req.build())).await;
        resp.unwrap_or_else(|_| panic!("{what} hung")).unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}

/// A proxy request being built.
pub struct Req {
    client: EdgeClient,
    method: Method,
    path: String,
    host: String,
    headers: Vec<(String, String)>,
    body: &'static str,
}

impl Req {
    /// Adds a request header.
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the `Host`.
    pub fn host(mut self, host: &str) -> Req {
        self.host = host.into();
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: &'static str) -> Req {
        self.body = body;
        self
    }

    fn build(&self) -> Request<Full<Bytes>> {
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(format!("http://{}{}", self.client.proxy, self.path))
            .header("host", &self.host);
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        req.body(Full::new(Bytes::from_static(self.body.as_bytes()))).unwrap()
    }

    /// Sends it and reads the whole answer.
    pub async fn send(self) -> Resp {
        self.client.send(self.build()).await
    }
}

/// A complete proxy answer.
#[derive(Debug, Clone)]
pub struct Resp {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Resp {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value (the first), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The `Cache-Status` value (empty if absent).
    pub fn cache_status(&self) -> String {
        self.header("cache-status").unwrap_or_default()
    }

    /// The `Cache-Status` parameters (`hit`, `fwd`, `detail`, …) by name.
    pub fn cache_params(&self) -> HashMap<String, String> {
        let status = self.cache_status();
        status
            .split(';')
            .skip(1)
            .map(|p| p.trim())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.trim_matches('"').to_owned()),
                None => (p.to_owned(), String::new()),
            })
            .collect()
    }

    /// Answered from the cache without going to the origin.
    pub fn is_hit(&self) -> bool {
        self.cache_params().contains_key("hit")
    }

    /// The `fwd` reason, if the request went to the origin.
    pub fn fwd(&self) -> Option<String> {
        self.cache_params().get("fwd").cloned()
    }

    /// The `detail` of `Cache-Status`, if any.
    pub fn detail(&self) -> Option<String> {
        self.cache_params().get("detail").cloned()
    }

    /// Asserts a `200` with `body`, saying what came instead.
    #[track_caller]
    pub fn assert_ok(&self, body: &str) -> &Resp {
        assert_eq!((self.status, self.text().as_str()), (StatusCode::OK, body), "{}", self.cache_status());
        self
    }

    /// Asserts a fresh hit (`hit` without detail).
    #[track_caller]
    pub fn assert_hit(&self) -> &Resp {
        assert!(self.is_hit() && self.detail().is_none(), "expected a hit, got `{}`", self.cache_status());
        self
    }

    /// Asserts the request went to the origin for `fwd` (e.g. `miss`, `stale`).
    #[track_caller]
    pub fn assert_fwd(&self, fwd: &str) -> &Resp {
        assert_eq!(self.fwd().as_deref(), Some(fwd), "Cache-Status `{}`", self.cache_status());
        self
    }
}
