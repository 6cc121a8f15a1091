//! The origin clients: pooled hyper clients speaking http:// or https:// (HTTP/2 when the origin's
//! ALPN offers it), with TLS from `edgepurge-tls`.
//!
//! Trust and the connect timeout are per client, so origins that differ in either get their own
//! client: the public roots, or the public roots plus the origin's `ca-file` CAs, with the
//! origin's `connect-timeout-ms`. Origins alike in both share a client and its connection pool.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{EdgeConfig, OriginConfig};
use crate::response::ProxyBody;

/// One pooled origin client.
pub(crate) type OriginClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// The origin clients by trust set and connect timeout.
pub(crate) struct OriginClients {
    /// Keyed by the origin's `ca-file` (none: the public roots) and connect timeout (ms).
    clients: HashMap<(Option<PathBuf>, u64), OriginClient>,
    /// For an origin not in the configuration the clients were built from.
    fallback: OriginClient,
}

impl OriginClients {
    /// Builds a client for each distinct trust set and connect timeout of `config`'s origins;
    /// fails naming the `ca-file` that cannot be used.
    pub fn new(config: &EdgeConfig) -> anyhow::Result<OriginClients> {
        let no_extra: &[PathBuf] = &[];
        let fallback = client(edgepurge_tls::client_config(no_extra)?, Duration::from_secs(2));
        let mut clients = HashMap::new();
        for origin in &config.origins {
            let key = (origin.ca_file.clone(), origin.connect_timeout_ms);
            if clients.contains_key(&key) {
                continue;
            }
            let tls = match &origin.ca_file {
                None => edgepurge_tls::client_config(no_extra)?,
                Some(ca_file) => edgepurge_tls::client_config(std::slice::from_ref(ca_file))
                    .map_err(|e| anyhow::anyhow!("origin for host `{}`: ca-file: {e}", origin.host))?,
            };
            clients.insert(key, client(tls, origin.connect_timeout()));
        }
        Ok(OriginClients { clients, fallback })
    }

    /// The client for `origin`'s trust set and connect timeout.
    pub fn for_origin(&self, origin: &OriginConfig) -> &OriginClient {
        // Every configured origin has a client (built in `new` from the same config); the
        // fallback trusts only the public roots, so it can only refuse more, never trust more.
        self.clients.get(&(origin.ca_file.clone(), origin.connect_timeout_ms)).unwrap_or(&self.fallback)
    }
}

fn client(tls: edgepurge_tls::rustls::ClientConfig, connect_timeout: Duration) -> OriginClient {
    http_client(tls, connect_timeout)
}

/// A pooled hyper client for http:// and https:// URLs (HTTP/2 when the server's ALPN offers it)
/// with `tls`, `TCP_NODELAY` and `connect_timeout`: the origin clients, and the CLI's API client.
pub fn http_client<B>(
    mut tls: edgepurge_tls::rustls::ClientConfig,
    connect_timeout: Duration,
) -> Client<HttpsConnector<HttpConnector>, B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    // hyper-rustls insists on writing ALPN itself (from `enable_http1`/`enable_http2`: the same
    // `h2`, `http/1.1`) and panics on a preset list.
    tls.alpn_protocols.clear();
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    // The HTTPS connector hands https:// URIs to this connector for the TCP part.
    http.enforce_http(false);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(connector)
}
