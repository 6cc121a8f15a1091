//! The edge's listeners: the proxy (HTTP/1.1 and HTTP/2 cleartext, hyper-util's auto server),
//! with `[tls]` the same proxy over TLS (HTTP/2 or HTTP/1.1 by ALPN; rustls set up by
//! `edgepurge-tls`), and the admin listener (see `admin`), served by `edgepurge-serve`'s accept
//! loop with its default timeouts and graceful shutdown. With
//! `[control]`, the control consumer (see [`crate::consumer`]) starts with the listeners and
//! stops on shutdown.
//!
//! ```no_run
//! # async fn f(config: edgepurge_edge::config::EdgeConfig) -> anyhow::Result<()> {
//! use edgepurge_policy_runtime::LoadedPolicy;
//! let policy = LoadedPolicy::builtin(config.policy.config.clone());
//! let edge = edgepurge_edge::server::Edge::new(config, policy)?.bind().await?;
//! println!("proxy on {}, admin on {}", edge.proxy_addr(), edge.admin_addr());
//! edge.serve(tokio::signal::ctrl_c()).await
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use edgepurge_policy_runtime::{LoadedPolicy, PolicySlot};
use edgepurge_serve::{Accepted, ConnectionService, Server, Timeouts};
use edgepurge_tls::mtls::ReloadingServerConfig;
use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::net::TcpListener;

use crate::config::EdgeConfig;
use crate::consumer::Consumer;
use crate::state::Shared;
use crate::{admin, proxy};

/// Runs the edge until `shutdown` completes, then drains in-flight requests.
pub async fn run(config: EdgeConfig, policy: LoadedPolicy, shutdown: impl Future) -> anyhow::Result<()> {
    Edge::new(config, policy)?.bind().await?.serve(shutdown).await
}

/// The edge before its listeners are bound.
pub struct Edge {
    shared: Arc<Shared>,
    /// The TLS listener's handshake setup, when `[tls]` is configured.
    tls: Option<ReloadingServerConfig>,
}

impl Edge {
    /// An edge with its cache store, fill map and origin client, serving with `policy`.
    /// Fails when the `[tls]` certificate or key cannot be used, naming the file and the problem.
    pub fn new(config: EdgeConfig, policy: LoadedPolicy) -> anyhow::Result<Edge> {
        let tls = match &config.tls {
            Some(tls) => Some(
                ReloadingServerConfig::without_client_auth(&tls.files.cert, &tls.files.key)
                    .map_err(|e| anyhow::anyhow!("[tls]: {e}"))?,
            ),
            None => None,
        };
        Ok(Edge { shared: Shared::new(config, PolicySlot::new(policy))?, tls })
    }

    /// The policy slot, to replace the policy while serving.
    pub fn policy(&self) -> PolicySlot {
        self.shared.policy.clone()
    }

    /// Binds the proxy (`listen`), admin (`admin-listen`) and, when configured, TLS (`tls.listen`)
    /// listeners; port 0 picks a free port.
    pub async fn bind(self) -> anyhow::Result<BoundEdge> {
        let config = &self.shared.config;
        let proxy = TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {} (listen): {e}", config.listen))?;
        let admin = TcpListener::bind(config.admin_listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {} (admin-listen): {e}", config.admin_listen))?;
        let consumer = match &config.control {
            Some(section) => Some(Consumer::prepare(Arc::clone(&self.shared), section.clone()).await?),
            None => None,
        };
        let tls = match (self.tls, &config.tls) {
            (Some(config), Some(section)) => {
                let listener = TcpListener::bind(section.listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {} (tls.listen): {e}", section.listen))?;
                Some(TlsListener { listener, config })
            }
            _ => None,
        };
        Ok(BoundEdge { shared: self.shared, proxy, admin, tls, consumer })
    }
}

/// The bound TLS listener and its certificate (re-read when its files change).
struct TlsListener {
    listener: TcpListener,
    config: ReloadingServerConfig,
}

/// The edge with bound listeners.
pub struct BoundEdge {
    shared: Arc<Shared>,
    proxy: TcpListener,
    admin: TcpListener,
    tls: Option<TlsListener>,
    /// The control consumer, with `[control]`.
    consumer: Option<Consumer>,
}

impl BoundEdge {
    /// The proxy listener's address.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy.local_addr().expect("bound listener has an address")
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr().expect("bound listener has an address")
    }

    /// The TLS listener's address, when `[tls]` is configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|tls| tls.listener.local_addr().expect("bound listener has an address"))
    }

    /// The policy slot, to replace the policy while serving.
    pub fn policy(&self) -> PolicySlot {
        self.shared.policy.clone()
    }

    /// Serves the listeners until `shutdown` completes; then stops accepting and waits (up to
    /// [`Timeouts::DEFAULT`]'s drain, 30 s) for the requests in flight, TLS connections included.
    pub async fn serve(self, shutdown: impl Future) -> anyhow::Result<()> {
        let tls_addr = self.tls_addr();
        let BoundEdge { shared, proxy, admin, tls, consumer } = self;
        let consumer = match consumer {
            Some(consumer) => Some(consumer.start().await),
            None => None,
        };
        let _sweeper = shared.store.spawn_sweeper(Duration::from_secs(1), 10_000)?;
        tracing::info!(proxy = %proxy.local_addr()?, admin = %admin.local_addr()?, tls = ?tls_addr, "edge listening");
        let mut server = Server::new("edge", Timeouts::DEFAULT).listen(Listener::Proxy, proxy, None).listen(
            Listener::Admin,
            admin,
            None,
        );
        if let Some(tls) = tls {
            server = server.listen(Listener::Proxy, tls.listener, Some(tls.config));
        }
        let connect = move |accepted: Accepted<'_, Listener>| {
            let (shared, is_admin, peer) = (Arc::clone(&shared), accepted.listener == Listener::Admin, accepted.peer);
            Some(ConnectionService::new(service_fn(move |req: Request<Incoming>| {
                let shared = Arc::clone(&shared);
                async move {
                    let resp = if is_admin {
                        admin::handle(&shared, req).await
                    } else {
                        proxy::handle(shared, req, peer).await
                    };
                    Ok::<_, Infallible>(resp)
                }
            })))
        };
        let draining = server.serve(connect, shutdown).await;
        if let Some(consumer) = consumer {
            consumer.stop().await;
        }
        tracing::info!("edge shutting down: draining requests in flight");
        draining.drain().await;
        Ok(())
    }
}

/// Which listener a connection came from: the proxy (plain or TLS) or the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Proxy,
    Admin,
}
