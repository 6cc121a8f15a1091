//! The accept loop: [`Server`] accepts on its listeners until shutdown, serving each connection
//! in its own task; [`Draining`] then waits for the connections in flight.

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::{Accepted, ConnectionService, Negotiated, Refused, ReloadingServerConfig, Timeouts, TlsPeer};

/// What to do with a refused handshake.
type RefusedHook<K> = Arc<dyn Fn(Refused<'_, K>) + Send + Sync>;

/// One listener: its role's label, the socket and, for TLS, the handshake's config.
struct Listener<K> {
    label: K,
    tcp: TcpListener,
    tls: Option<ReloadingServerConfig>,
}

/// Listeners to serve, with the timeouts and hooks they share; [`Server::serve`] runs them.
pub struct Server<K> {
    /// Names the server in log lines ("edge", "control", "queue server").
    name: &'static str,
    timeouts: Timeouts,
    http2_only: bool,
    listeners: Vec<Listener<K>>,
    on_refused: RefusedHook<K>,
}

impl<K: Copy + Send + Sync + 'static> Server<K> {
    /// A server without listeners yet; `name` appears in its log lines.
    pub fn new(name: &'static str, timeouts: Timeouts) -> Self {
        let on_refused: RefusedHook<K> = Arc::new(move |refused: Refused<'_, K>| {
            tracing::debug!(server = name, peer = %refused.peer, error = %refused.error, "TLS connection dropped");
        });
        Server { name, timeouts, http2_only: false, listeners: Vec::new(), on_refused }
    }

    /// Adds a listener labelled `label` (given back in [`Accepted::listener`]); with `tls`, each
    /// connection first completes a handshake with the config current at its accept.
    pub fn listen(mut self, label: K, tcp: TcpListener, tls: Option<ReloadingServerConfig>) -> Self {
        self.listeners.push(Listener { label, tcp, tls });
        self
    }

    /// Serves HTTP/2 only (prior knowledge on plain listeners, whatever ALPN said over TLS),
    /// instead of detecting HTTP/1.1 or HTTP/2.
    pub fn http2_only(mut self) -> Self {
        self.http2_only = true;
        self
    }

    /// Calls `hook` for every refused TLS handshake (instead of the default debug log line), e.g.
    /// to count refusals by reason.
    pub fn on_refused(mut self, hook: impl Fn(Refused<'_, K>) + Send + Sync + 'static) -> Self {
        self.on_refused = Arc::new(hook);
        self
    }

    /// Accepts on every listener until `shutdown` completes, then closes the listeners and
    /// returns the connections still open, to [`Draining::drain`] once the role has done what
    /// must come first. `connect` chooses each connection's service; `None` closes it (the hook
    /// says why in its own log line).
    pub async fn serve<F, S, B>(self, connect: F, shutdown: impl Future) -> Draining
    where
        F: Fn(Accepted<'_, K>) -> Option<ConnectionService<S>> + Send + Sync + 'static,
        S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let Server { name, timeouts, http2_only, listeners, on_refused } = self;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        if http2_only {
            builder = builder.http2_only();
        }
        let connection =
            Arc::new(PerConnection { name, handshake: timeouts.handshake, http2_only, builder, connect, on_refused });
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut first = 0;
        loop {
            let (index, accepted) = tokio::select! {
                accepted = accept_any(&listeners, &mut first) => accepted,
                _ = &mut shutdown => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(server = name, error = %e, "accept failed");
                    tokio::time::sleep(timeouts.accept_backoff).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let listener = &listeners[index];
            // The current config per connection: a renewed certificate applies to the next one.
            let acceptor = listener.tls.as_ref().map(|tls| TlsAcceptor::from(tls.current()));
            // The watcher is taken before the handshake, so shutdown waits for handshakes too.
            let watcher = graceful.watcher();
            tokio::spawn(Arc::clone(&connection).run(listener.label, stream, peer, acceptor, watcher));
        }
        drop(listeners);
        Draining { name, graceful, timeout: timeouts.drain }
    }
}

/// The next connection of any listener, with the listener's index. Polling starts one listener
/// further each time, so a busy listener cannot starve the others.
async fn accept_any<K>(
    listeners: &[Listener<K>],
    first: &mut usize,
) -> (usize, std::io::Result<(TcpStream, SocketAddr)>) {
    if listeners.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        for offset in 0..listeners.len() {
            let index = (*first + offset) % listeners.len();
            if let Poll::Ready(accepted) = listeners[index].tcp.poll_accept(cx) {
                *first = (index + 1) % listeners.len();
                return Poll::Ready((index, accepted));
            }
        }
        Poll::Pending
    })
    .await
}

/// What every connection's task shares: the hooks, the HTTP builder, the handshake timeout.
struct PerConnection<F, K> {
    name: &'static str,
    handshake: Duration,
    http2_only: bool,
    builder: auto::Builder<TokioExecutor>,
    connect: F,
    on_refused: RefusedHook<K>,
}

impl<F, K: Copy> PerConnection<F, K> {
    /// Completes the handshake (with `acceptor`), asks the role for the service and serves the
    /// connection until it ends, shutdown closes it or its `close_when` completes.
    async fn run<S, B>(
        self: Arc<Self>,
        listener: K,
        stream: TcpStream,
        peer: SocketAddr,
        acceptor: Option<TlsAcceptor>,
        watcher: Watcher,
    ) where
        F: Fn(Accepted<'_, K>) -> Option<ConnectionService<S>>,
        S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let Some(acceptor) = acceptor else {
            let Some(service) = (self.connect)(Accepted { listener, peer, tls: None }) else { return };
            return self.serve(self.builder.clone(), TokioIo::new(stream), service, peer, watcher).await;
        };
        let (stream, negotiated) = match edgepurge_tls::accept(&acceptor, stream, self.handshake).await {
            Ok(accepted) => accepted,
            Err(error) => return (self.on_refused)(Refused { listener, peer, error: &error }),
        };
        let certificates = stream.get_ref().1.peer_certificates().unwrap_or_default();
        let tls = TlsPeer { negotiated, certificates };
        let Some(service) = (self.connect)(Accepted { listener, peer, tls: Some(tls) }) else { return };
        // Serve the protocol ALPN chose; without ALPN, detect it from the preface.
        let builder = match negotiated {
            _ if self.http2_only => self.builder.clone(),
            Negotiated::Http2 => self.builder.clone().http2_only(),
            Negotiated::Http1 => self.builder.clone().http1_only(),
            Negotiated::Unknown => self.builder.clone(),
        };
        self.serve(builder, TokioIo::new(stream), service, peer, watcher).await
    }

    /// Serves `io` with `service` under `watcher` (so shutdown ends it gracefully).
    async fn serve<I, S, B>(
        &self,
        builder: auto::Builder<TokioExecutor>,
        io: I,
        service: ConnectionService<S>,
        peer: SocketAddr,
        watcher: Watcher,
    ) where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let ConnectionService { service, close_when } = service;
        let served = watcher.watch(builder.serve_connection(io, service).into_owned());
        let result = match close_when {
            // Dropping the connection closes it.
            Some(close) => tokio::select! {
                result = served => result,
                () = close => return,
            },
            None => served.await,
        };
        if let Err(e) = result {
            tracing::debug!(server = self.name, %peer, error = %e, "connection ended with an error");
        }
    }
}

/// The connections still open after [`Server::serve`] stopped accepting.
pub struct Draining {
    name: &'static str,
    graceful: GracefulShutdown,
    timeout: Duration,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every connection closed in time.
    Closed,
    /// Connections were still open when [`Timeouts::drain`] ran out (logged as a warning).
    TimedOut,
}

impl Draining {
    /// How many connections are open (handshakes in progress included).
    pub fn open(&self) -> usize {
        self.graceful.count()
    }

    /// Tells every connection to finish (HTTP/1.1 after its request in flight, HTTP/2 with
    /// `GOAWAY`) and waits up to [`Timeouts::drain`] for them to close.
    pub async fn drain(self) -> Drained {
        match tokio::time::timeout(self.timeout, self.graceful.shutdown()).await {
            Ok(()) => Drained::Closed,
            Err(_) => {
                tracing::warn!(server = self.name, "connections still open after {:?}; closing", self.timeout);
                Drained::TimedOut
            }
        }
    }
}
