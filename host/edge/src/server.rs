//! The edge's listeners: the proxy (HTTP/1.1 and HTTP/2 cleartext, hyper-util's auto server)
//! and the admin listener (see `admin`), with graceful shutdown.
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

use edgepurge_policy_runtime::LoadedPolicy;
use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::config::EdgeConfig;
use crate::origin::Shared;
use crate::policy_slot::PolicySlot;
use crate::{admin, proxy};

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the edge until `shutdown` completes, then drains in-flight requests.
pub async fn run(config: EdgeConfig, policy: LoadedPolicy, shutdown: impl Future) -> anyhow::Result<()> {
    Edge::new(config, policy)?.bind().await?.serve(shutdown).await
}

/// The edge before its listeners are bound.
pub struct Edge {
    shared: Arc<Shared>,
}

impl Edge {
    /// An edge with its cache store, fill map and origin client, serving with `policy`.
    pub fn new(config: EdgeConfig, policy: LoadedPolicy) -> anyhow::Result<Edge> {
        Ok(Edge { shared: Shared::new(config, PolicySlot::new(policy))? })
    }

    /// The policy slot, to replace the policy while serving.
    pub fn policy(&self) -> PolicySlot {
        self.shared.policy.clone()
    }

    /// Binds the proxy (`listen`) and admin (`admin-listen`) listeners; port 0 picks a free port.
    pub async fn bind(self) -> anyhow::Result<BoundEdge> {
        let config = &self.shared.config;
        let proxy = TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {} (listen): {e}", config.listen))?;
        let admin = TcpListener::bind(config.admin_listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {} (admin-listen): {e}", config.admin_listen))?;
        Ok(BoundEdge { shared: self.shared, proxy, admin })
    }
}

/// The edge with bound listeners.
pub struct BoundEdge {
    shared: Arc<Shared>,
    proxy: TcpListener,
    admin: TcpListener,
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

    /// The policy slot, to replace the policy while serving.
    pub fn policy(&self) -> PolicySlot {
        self.shared.policy.clone()
    }

    /// Serves both listeners until `shutdown` completes; then stops accepting and waits (up to
    /// 30 s) for the requests in flight.
    pub async fn serve(self, shutdown: impl Future) -> anyhow::Result<()> {
        let BoundEdge { shared, proxy, admin } = self;
        let _sweeper = shared.store.spawn_sweeper(Duration::from_secs(1), 10_000)?;
        let builder = auto::Builder::new(TokioExecutor::new());
        let graceful = GracefulShutdown::new();
        tracing::info!(proxy = %proxy.local_addr()?, admin = %admin.local_addr()?, "edge listening");
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, is_admin) = tokio::select! {
                accepted = proxy.accept() => (accepted, false),
                accepted = admin.accept() => (accepted, true),
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
            let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
        drop((proxy, admin));
        tracing::info!("edge shutting down: draining requests in flight");
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
            tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; closing");
        }
        Ok(())
    }
}
