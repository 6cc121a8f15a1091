//! The edge's listeners: the proxy (HTTP/1.1 and HTTP/2 cleartext, hyper-util's auto server),
//! with `[tls]` the same proxy over TLS (HTTP/2 or HTTP/1.1 by ALPN; rustls set up by
//! `edgepurge-tls`), and the admin listener (see `admin`), with graceful shutdown. With
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
use edgepurge_tls::mtls::ReloadingServerConfig;
use edgepurge_tls::Negotiated;
use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::config::EdgeConfig;
use crate::consumer::Consumer;
use crate::state::Shared;
use crate::{admin, proxy};

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TLS client may take to complete its handshake before its connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Accepts on the TLS listener, or never completes when there is none.
async fn accept_tls(tls: Option<&TlsListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match tls {
        Some(tls) => tls.listener.accept().await,
        None => std::future::pending().await,
    }
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
    /// 30 s) for the requests in flight, TLS connections included.
    pub async fn serve(self, shutdown: impl Future) -> anyhow::Result<()> {
        let tls_addr = self.tls_addr();
        let BoundEdge { shared, proxy, admin, tls, consumer } = self;
        let consumer = match consumer {
            Some(consumer) => Some(consumer.start().await),
            None => None,
        };
        let _sweeper = shared.store.spawn_sweeper(Duration::from_secs(1), 10_000)?;
        let builder = auto::Builder::new(TokioExecutor::new());
        let graceful = GracefulShutdown::new();
        tracing::info!(proxy = %proxy.local_addr()?, admin = %admin.local_addr()?, tls = ?tls_addr, "edge listening");
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, is_admin, acceptor) = tokio::select! {
                accepted = proxy.accept() => (accepted, false, None),
                accepted = admin.accept() => (accepted, true, None),
                accepted = accept_tls(tls.as_ref()) => (accepted, false, tls.as_ref().map(|t| TlsAcceptor::from(t.config.current()))),
                _ = &mut shutdown => break,
            };
            let (stream, peer) = match stream {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let shared = Arc::clone(&shared);
            let service = service_fn(move |req: Request<Incoming>| {
                let shared = Arc::clone(&shared);
                async move {
                    let resp = if is_admin {
                        admin::handle(&shared, req).await
                    } else {
                        proxy::handle(shared, req, peer).await
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            if let Some(acceptor) = acceptor {
                // The handshake runs in the connection's own task, bounded, so a slow or silent
                // client never holds up accepting; the watcher makes shutdown wait for it too.
                let (builder, watcher) = (builder.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let (stream, negotiated) = match edgepurge_tls::accept(&acceptor, stream, HANDSHAKE_TIMEOUT).await {
                        Ok(accepted) => accepted,
                        Err(e) => return tracing::debug!(%peer, error = %e, "TLS connection dropped"),
                    };
                    // Serve the protocol ALPN chose; without ALPN, detect it from the preface.
                    let builder = match negotiated {
                        Negotiated::Http2 => builder.http2_only(),
                        Negotiated::Http1 => builder.http1_only(),
                        Negotiated::Unknown => builder,
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, "TLS connection ended with an error");
                    }
                });
                continue;
            }
            let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
        drop((proxy, admin, tls));
        if let Some(consumer) = consumer {
            consumer.stop().await;
        }
        tracing::info!("edge shutting down: draining requests in flight");
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
            tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; closing");
        }
        Ok(())
    }
}
