//! # edgepurge-serve — the one accept loop of edgepurge's servers
//!
//! The edge (proxy, admin and TLS listeners), control's API and control's queue server all serve
//! HTTP the same way, so they share this loop and its [`Timeouts`]:
//!
//! - one or more listeners, each plain or TLS through a [`ReloadingServerConfig`] (its current
//!   config taken per connection, so a renewed certificate applies to the next one);
//! - every accepted connection gets `TCP_NODELAY` and its own task, where the TLS handshake runs
//!   bounded by [`Timeouts::handshake`], so a slow or silent client never holds up accepting;
//! - hyper-util's auto server (HTTP/1.1 or HTTP/2; over TLS the protocol ALPN chose), or
//!   HTTP/2 only ([`Server::http2_only`]);
//! - a failed accept (usually `EMFILE`) pauses for [`Timeouts::accept_backoff`] rather than spin;
//! - on shutdown the listeners close at once and [`Draining::drain`] waits up to
//!   [`Timeouts::drain`] for the connections in flight (handshakes included).
//!
//! What differs per role are hooks: which service serves a connection, given an [`Accepted`]
//! (the listener it came from, the peer, for TLS the protocol and the peer's certificates); what
//! happens to a refused handshake ([`Server::on_refused`]); and an optional future after which a
//! connection is closed ([`ConnectionService::close_when`]).
//!
//! ```no_run
//! # async fn f(listener: tokio::net::TcpListener) {
//! use edgepurge_serve::{ConnectionService, Server, Timeouts};
//! use hyper::{body::Incoming, service::service_fn, Request, Response};
//!
//! let hello = |_req: Request<Incoming>| async { Ok::<_, std::convert::Infallible>(Response::new(String::from("hi"))) };
//! let draining = Server::new("example", Timeouts::DEFAULT)
//!     .listen((), listener, None)
//!     .serve(move |_accepted| Some(ConnectionService::new(service_fn(hello))), tokio::signal::ctrl_c())
//!     .await;
//! draining.drain().await;
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use edgepurge_tls::mtls::ReloadingServerConfig;
use edgepurge_tls::rustls::pki_types::CertificateDer;
pub use edgepurge_tls::{HandshakeError, Negotiated};

mod server;
pub use server::{Drained, Draining, Server};

#[cfg(test)]
mod tests;

/// Every timeout of serving. [`Timeouts::DEFAULT`] is the one set; a role that needs another
/// value uses one of the named sets next to it, which say why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A TLS client that has not completed its handshake after this is dropped, so silent
    /// clients cannot pile up.
    pub handshake: Duration,
    /// How long shutdown waits for the connections in flight once accepting stopped.
    pub drain: Duration,
    /// How long accepting pauses after a failed accept (usually `EMFILE`: out of file
    /// descriptors), so the loop does not spin while connections close.
    pub accept_backoff: Duration,
}

impl Timeouts {
    /// The default: handshake 10 s, drain 30 s (a proxied response in flight is allowed that
    /// long to finish), accept back-off 10 ms. The edge serves with it.
    pub const DEFAULT: Timeouts = Timeouts {
        handshake: Duration::from_secs(10),
        drain: Duration::from_secs(30),
        accept_backoff: Duration::from_millis(10),
    };

    /// Control's API: drain 60 s, because a large bulk submission being appended when shutdown
    /// comes is still answered (the client would otherwise retry a submission that was stored).
    pub const CONTROL_API: Timeouts = Timeouts { drain: Duration::from_secs(60), ..Timeouts::DEFAULT };

    /// Control's queue server: drain 5 s, because its edge streams are ended before the drain
    /// starts (the edges reconnect to another node), so only closing the connections is left.
    pub const QUEUE_SERVER: Timeouts = Timeouts { drain: Duration::from_secs(5), ..Timeouts::DEFAULT };
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::DEFAULT
    }
}

/// A connection accepted (and, on a TLS listener, through its handshake), for the hook that
/// chooses its service.
#[derive(Debug, Clone, Copy)]
pub struct Accepted<'a, K> {
    /// The listener it came from (the role's own label, given to [`Server::listen`]).
    pub listener: K,
    /// The peer's address.
    pub peer: std::net::SocketAddr,
    /// What the TLS handshake established; `None` on a plain listener.
    pub tls: Option<TlsPeer<'a>>,
}

/// What a completed TLS handshake established.
#[derive(Debug, Clone, Copy)]
pub struct TlsPeer<'a> {
    /// The HTTP version ALPN chose.
    pub negotiated: Negotiated,
    /// The client's certificate chain as the handshake verified it, leaf first; empty when the
    /// listener does not ask for one.
    pub certificates: &'a [CertificateDer<'static>],
}

/// A handshake a TLS listener refused, for [`Server::on_refused`].
#[derive(Debug)]
pub struct Refused<'a, K> {
    /// The listener it came to.
    pub listener: K,
    /// The peer's address.
    pub peer: std::net::SocketAddr,
    /// Why the handshake failed.
    pub error: &'a HandshakeError,
}

/// How one connection is served: its service and, optionally, a future after which the
/// connection is closed (whatever it is doing).
pub struct ConnectionService<S> {
    pub(crate) service: S,
    pub(crate) close_when: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<S> ConnectionService<S> {
    /// `service` serves every request of the connection until the client or shutdown ends it.
    pub fn new(service: S) -> Self {
        ConnectionService { service, close_when: None }
    }

    /// Closes the connection when `close` completes (e.g. the peer's certificate no longer
    /// passing a re-check); `close` is dropped when the connection ends first.
    pub fn close_when(mut self, close: impl Future<Output = ()> + Send + 'static) -> Self {
        self.close_when = Some(Box::pin(close));
        self
    }
}
