//! The origin clients: pooled hyper clients speaking http:// or https:// (HTTP/2 when the origin's
//! ALPN offers it), with TLS from `edgepurge-tls`.
//!
//! Trust is per client, so origins with different trust need different clients: one trusting the
//! public roots, and one more per distinct `ca-file` (public roots plus that file's CAs). Origins
//! sharing a `ca-file` share a client and its connection pool.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{EdgeConfig, OriginConfig};
use crate::origin::ProxyBody;

/// One pooled origin client.
pub(crate) type OriginClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// The origin clients by trust set.
pub(crate) struct OriginClients {
    /// For origins without `ca-file`.
    public: OriginClient,
    /// For origins with a `ca-file`, keyed by it.
    by_ca_file: HashMap<PathBuf, OriginClient>,
}

impl OriginClients {
    /// Builds a client for each distinct trust set of `config`'s origins; fails naming the
    /// `ca-file` that cannot be used.
    pub fn new(config: &EdgeConfig) -> anyhow::Result<OriginClients> {
        // One connector setting for all: the longest configured connect timeout (the per-origin
        // read timeout bounds the whole request anyway).
        let connect = config.origins.iter().map(OriginConfig::connect_timeout).max();
        let connect = connect.unwrap_or(Duration::from_secs(2));
        let no_extra: &[PathBuf] = &[];
        let public = client(edgepurge_tls::client_config(no_extra)?, connect);
        let mut by_ca_file = HashMap::new();
        for ca_file in config.origin_ca_files() {
            let tls = edgepurge_tls::client_config(&[ca_file]).map_err(|e| anyhow::anyhow!("origin ca-file: {e}"))?;
            by_ca_file.insert(ca_file.to_owned(), client(tls, connect));
        }
        Ok(OriginClients { public, by_ca_file })
    }

    /// The client for `origin`'s trust set.
    pub fn for_origin(&self, origin: &OriginConfig) -> &OriginClient {
        // Every configured ca-file has a client (built in `new` from the same config); falling
        // back to the public roots for an unknown one can only refuse more, never trust more.
        origin.ca_file.as_ref().and_then(|file| self.by_ca_file.get(file)).unwrap_or(&self.public)
    }
}

fn client(mut tls: edgepurge_tls::rustls::ClientConfig, connect_timeout: Duration) -> OriginClient {
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
