//! Starting the control role: open the store, load the policy, bind the API (TLS through
//! `edgepurge-tls`, or plain HTTP on loopback only) and the queue server when `[queue-server]`
//! is set, and serve until shutdown (through `edgepurge-serve`'s accept loop): then the edge
//! streams end and the API drains.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use edgepurge_control_store::{ControlStore, SqliteStore};
use edgepurge_serve::{Accepted, ConnectionService, Server, Timeouts};
use edgepurge_tls::mtls::ReloadingServerConfig;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::router;
use crate::background;
use crate::config::ControlConfig;
use crate::config::QueueServerSection;
use crate::hub::PublishedPolicy;
use crate::queue_server::QueueServer;
use crate::state::{AppState, QueueState};

/// How often the queues are observed for health and send history when nobody asks.
const OBSERVE_EVERY: Duration = Duration::from_secs(1);

/// Why the control role could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("database {path}: {source}")]
    Store {
        /// The file.
        path: String,
        /// What the store said.
        source: edgepurge_control_store::Error,
    },
    /// The policy could not be loaded.
    #[error("[policy]: {0}")]
    Policy(String),
    /// The certificate or key cannot be used.
    #[error("[tls]: {0}")]
    Tls(edgepurge_tls::TlsError),
    /// Plain HTTP asked for on an address other machines can reach.
    #[error("listen = \"{0}\" is not a loopback address, so the API needs TLS: add [tls] cert and key")]
    PlainOffLoopback(SocketAddr),
    /// The queue server cannot start (its TLS files or its address).
    #[error(transparent)]
    QueueServer(#[from] crate::queue_server::QueueServerError),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The control role, bound and ready to serve.
pub struct BoundControl {
    listener: TcpListener,
    /// The API's certificate, re-read when its files change.
    tls: Option<ReloadingServerConfig>,
    router: Router,
    /// Retention and queue observation, stopped when serving ends.
    background: Vec<JoinHandle<()>>,
    /// The queue server, when `[queue-server]` is set.
    queue_server: Option<QueueServerTask>,
    /// The shared state, when started from a configuration (not with [`BoundControl::bind`]).
    state: Option<Arc<AppState<SqliteStore>>>,
}

/// The queue server, ready to run: its future and the switch that ends it.
struct QueueServerTask {
    addr: SocketAddr,
    run: Pin<Box<dyn Future<Output = ()> + Send>>,
    stop: watch::Sender<bool>,
}

impl BoundControl {
    /// Opens the store named by `config`, loads the policy, and binds the API.
    pub async fn start(config: &ControlConfig) -> Result<Self, StartError> {
        let store = SqliteStore::open(&config.database, config.queues)
            .map_err(|source| StartError::Store { path: config.database.display().to_string(), source })?;
        let loaded = edgepurge_policy_runtime::load_section_component(&config.policy)
            .await
            .map_err(|e| StartError::Policy(e.to_string()))?;
        tracing::info!(policy = %loaded.policy.info().name, source = %loaded.source, "policy loaded");
        // Edges get the component itself, as it was read and validated here.
        let info = loaded.policy.info().clone();
        let published = loaded.bytes.map(|b| PublishedPolicy::new(info.name, info.version, b.into()));
        let clock = crate::health::system_clock();
        let state = AppState::new(store.clone(), loaded.policy, config, clock.clone());
        state.queue.publish_policy(published);
        let state = Arc::new(state);
        let mut bound = Self::bind(config, router(state.clone())).await?;
        if let Some(section) = &config.queue_server {
            bound = bound.with_queue_server(section, state.queues.clone()).await?;
        }
        bound.state = Some(state.clone());
        bound.background = vec![
            background::spawn_retention(store.clone(), config.retention.settings(), clock, None),
            background::spawn_observer(store, state.monitor.clone(), OBSERVE_EVERY),
        ];
        Ok(bound)
    }

    /// Binds `config.listen` for `router`, with TLS when `[tls]` is set.
    pub async fn bind(config: &ControlConfig, router: Router) -> Result<Self, StartError> {
        // `ControlConfig::validate` refuses this too; checked again so no caller can skip it.
        if config.tls.is_none() && !config.listen.ip().is_loopback() {
            return Err(StartError::PlainOffLoopback(config.listen));
        }
        let tls = match &config.tls {
            Some(tls) => {
                Some(ReloadingServerConfig::without_client_auth(&tls.cert, &tls.key).map_err(StartError::Tls)?)
            }
            None => None,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind { addr: config.listen, source })?;
        Ok(BoundControl { listener, tls, router, background: Vec::new(), queue_server: None, state: None })
    }

    /// Adds the queue server of `section` over `state` (the router's [`AppState::queues`], so
    /// appends wake the streams).
    pub async fn with_queue_server<S: ControlStore + 'static>(
        mut self,
        section: &QueueServerSection,
        state: Arc<QueueState<S>>,
    ) -> Result<Self, StartError> {
        let server = QueueServer::bind(section).await?;
        let addr = server.local_addr();
        let (stop, stopped) = watch::channel(false);
        self.queue_server = Some(QueueServerTask { addr, run: Box::pin(server.serve(state, stopped)), stop });
        Ok(self)
    }

    /// The queue server's bound address, when there is one.
    pub fn queue_server_addr(&self) -> Option<SocketAddr> {
        self.queue_server.as_ref().map(|q| q.addr)
    }

    /// The shared state (store, policy, queue hub), when started with [`BoundControl::start`]:
    /// e.g. for [`AppState::reload_policy`] on SIGHUP.
    pub fn state(&self) -> Option<Arc<AppState<SqliteStore>>> {
        self.state.clone()
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Whether the API is served over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then stops accepting and waits (up to
    /// [`Timeouts::CONTROL_API`]'s drain, 60 s) for the requests in flight, so a submission being
    /// appended is answered.
    pub async fn serve(self, shutdown: impl Future) {
        let BoundControl { listener, tls, router, background, queue_server, state: _ } = self;
        let queue_server = queue_server.map(|q| (q.stop, tokio::spawn(q.run)));
        let server = Server::new("control", Timeouts::CONTROL_API).listen((), listener, tls);
        let connect = move |_: Accepted<'_, ()>| Some(ConnectionService::new(TowerToHyperService::new(router.clone())));
        let draining = server.serve(connect, shutdown).await;
        // Edge streams first: they would otherwise hold the drain open until their edges leave.
        if let Some((stop, task)) = queue_server {
            let _ = stop.send(true);
            let _ = task.await;
        }
        tracing::info!("control shutting down: draining requests in flight");
        draining.drain().await;
        for task in background {
            task.abort();
        }
    }
}
