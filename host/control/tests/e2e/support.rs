//! The test harness: `ControlTest::new().rate_limit(2, 0.001).start()` runs the API on a free
//! loopback port over a fresh database; `Running` makes tokens, sends requests and reads the
//! store directly to check what was (or was not) queued; its `state` gives the queue hub, where a
//! test registers an edge's stream to make it connected.

use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use edgepurge_control::api::router;
use edgepurge_control::auth::{create_token, RateLimiter};
use edgepurge_control::config::{ControlConfig, LimitsSection};
use edgepurge_control::fold::FoldSettings;
use edgepurge_control::health::{system_clock, Clock, HealthSettings, QueueMonitor};
use edgepurge_control::history::CycleSettings;
use edgepurge_control::server::BoundControl;
use edgepurge_control::state::AppState;
use edgepurge_control_store::{QueueStore, SqliteStore};
use edgepurge_policy_runtime::LoadedPolicy;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Builds a control role for one test.
pub struct ControlTest {
    burst: u32,
    per_second: f64,
    limits: LimitsSection,
    queues: u32,
    fold: FoldSettings,
    health: HealthSettings,
    cycle: CycleSettings,
    clock: Clock,
    /// More `control.toml` text: top-level keys, then sections.
    config: String,
}

impl ControlTest {
    /// Defaults: a generous rate limit, the default limits, 4 queues.
    pub fn new() -> Self {
        ControlTest {
            burst: 10_000,
            per_second: 1_000.0,
            limits: LimitsSection::default(),
            queues: 4,
            fold: FoldSettings::default(),
            health: HealthSettings::default(),
            cycle: CycleSettings::default(),
            clock: system_clock(),
            config: String::new(),
        }
    }

    /// Adds `text` to the `control.toml` the role starts with (after `listen` and `database`:
    /// top-level keys first, then sections), e.g. `pacing-ms = 5` or a `[policy.config]`.
    pub fn config(mut self, text: &str) -> Self {
        self.config.push_str(text);
        self.config.push('\n');
        self
    }

    /// A token bucket of `burst` refilled at `per_second` (use a tiny rate for deterministic 429s).
    pub fn rate_limit(mut self, burst: u32, per_second: f64) -> Self {
        (self.burst, self.per_second) = (burst, per_second);
        self
    }

    /// Changes the validation limits.
    pub fn limits(mut self, f: impl FnOnce(&mut LimitsSection)) -> Self {
        f(&mut self.limits);
        self
    }

    /// Folds repeated purges within `window_ms` (S2.3); off by default.
    pub fn fold_window(mut self, window_ms: u64) -> Self {
        self.fold.window_ms = window_ms;
        self
    }

    /// Marks a queue stalled after `ms` without progress (S0.2).
    pub fn stall_after(mut self, ms: u64) -> Self {
        self.health.stall_after_ms = ms;
        self
    }

    /// Send-history slots of `slot_ms` in cycles of `cycle_ms` (S0.3).
    pub fn cycle(mut self, slot_ms: u64, cycle_ms: u64) -> Self {
        self.cycle = CycleSettings { slot_ms, cycle_ms };
        self
    }

    /// The clock the API stamps batches and judges health with.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Starts serving.
    pub async fn start(self) -> Result<Running> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("control.db");
        let config = ControlConfig::parse(&format!("listen = \"127.0.0.1:0\"\ndatabase = {:?}\n{}", db, self.config))?;
        let store = SqliteStore::open(&db, self.queues)?;
        // The builder's own limits, folding, health and clock over what the config says.
        let clock = self.clock;
        // The built-in policy with the `[policy]` config, as `BoundControl::start` loads it.
        let policy = LoadedPolicy::builtin(config.policy.config.clone());
        let mut state = AppState::new(store.clone(), policy, &config, clock.clone());
        state.limiter = RateLimiter::new(self.burst, self.per_second);
        state.limits = self.limits;
        state.fold = self.fold;
        state.monitor = Arc::new(QueueMonitor::new(self.health, self.cycle, clock));

        let state = Arc::new(state);
        let bound = BoundControl::bind(&config, router(state.clone())).await?;
        let base = format!("http://{}", bound.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(bound.serve(async move {
            let _ = stopped.await;
        }));
        Ok(Running {
            base,
            store,
            state,
            _dir: dir,
            stop: Some(stop),
            server: Some(server),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }
}

/// A running control role.
pub struct Running {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The same store the API writes.
    pub store: SqliteStore,
    /// The API's state: `state.queue.register(…)` makes an edge connected (as a queue stream does).
    pub state: Arc<AppState<SqliteStore>>,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// A response, its body parsed as JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub json: serde_json::Value,
    pub body: Bytes,
}

impl Resp {
    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The `error` message ("" when absent).
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }
}

impl Running {
    /// A new token with these host patterns.
    pub async fn token(&self, name: &str, hosts: &[&str], admin: bool) -> String {
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        create_token(&self.store, name, &hosts, admin, 0).await.expect("token created")
    }

    /// Sends a request; `headers` are extra `(name, value)` pairs.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut req = hyper::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.client.request(req.body(Full::new(body.into())).unwrap()).await.expect("request sent");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body read").to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Resp { status, headers, json, body: bytes }
    }

    /// `POST /v1/purges` with a JSON body.
    pub async fn purge(&self, token: &str, body: serde_json::Value) -> Resp {
        self.send("POST", "/v1/purges", Some(token), &[("content-type", "application/json")], body.to_string()).await
    }

    /// `POST /v1/purges` with a bulk body of this content type.
    pub async fn bulk(&self, token: &str, content_type: &str, body: impl Into<Bytes>) -> Resp {
        self.send("POST", "/v1/purges", Some(token), &[("content-type", content_type)], body).await
    }

    /// Tasks in every queue, ever appended.
    pub async fn queued(&self) -> u64 {
        self.store.queue_info().await.unwrap().iter().map(|q| q.next - 1).sum()
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }
}
